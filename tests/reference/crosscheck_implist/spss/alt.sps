SET DECIMAL COMMA .
SET LOCALE de_DE .

GET DATA
 /TYPE=TXT
 /FILE="spss/alt.dat"
 /DELCASE=LINE
 /DELIMITERS=";"
 /ARRANGEMENT=DELIMITED
 /FIRSTCASE=2
 /IMPORTCASE=ALL
 /VARIABLES=
 Imputation_ F4.2
 id F4.2
 x F13.2
 y F8.2
 grp A1
 f F5.2
 sid A2 .

CACHE .
EXECUTE .
DATASET NAME panImpute1 WINDOW=FRONT .

VALUE LABELS
 /f
 1 'lo'
 2 'mid'
 3 'hi'
 4 'zz' .

MISSING VALUES
 Imputation_ id x y f (-9) 
 grp sid ("-9") .
