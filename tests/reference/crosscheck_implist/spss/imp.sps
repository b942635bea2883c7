SET DECIMAL DOT .

GET DATA
 /TYPE=TXT
 /FILE="spss/imp.dat"
 /DELCASE=LINE
 /DELIMITERS="\t"
 /ARRANGEMENT=DELIMITED
 /FIRSTCASE=2
 /IMPORTCASE=ALL
 /VARIABLES=
 Imputation_ F4.2
 id F4.2
 x F13.2
 y F8.2
 grp A1
 f F7.2
 sid A4 .

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
 Imputation_ id x y f (-999) 
 grp sid ("-999") .
