# R side of tests/test_r_crosscheck_implist_datasets.py: mitml's three data sets (0.4-4),
# column by column: class, factor levels, missing positions and full-precision checksums.
# Run from this folder: Rscript make_datasets.R
suppressMessages(library(mitml))
library(jsonlite)
describe <- function(d) {
  list(dim = dim(d), names = names(d), columns = lapply(d, function(v) {
    num <- if (is.factor(v)) as.integer(v) else if (is.character(v)) rep(NA_real_, length(v)) else as.numeric(v)
    ok <- !is.na(v)
    list(class = class(v)[1], levels = if (is.factor(v)) levels(v) else NULL,
         na = which(!ok), sum = sum(num[ok]), sumsq = sum(num[ok]^2),
         wsum = sum(seq_along(v)[ok] * num[ok]),
         values = if (is.character(v)) v else NULL)
  }))
}
data(studentratings); data(leadership); data(justice)
out <- list(studentratings = describe(studentratings), leadership = describe(leadership),
            justice = describe(justice))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, null = "null"), "datasets.json")
