# R side of tests/test_r_crosscheck_implist_stats.py: mitml's convergence statistics
# (.GelmanRubin, .SDprop, .reducedACF; mitml 0.4-4) on chains of varied length and shape.
# Run from this folder: Rscript make_stats.R
suppressMessages(library(mitml))
library(jsonlite)
set.seed(20261126)
ar1 <- function(n, phi) as.numeric(arima.sim(list(ar = phi), n))
chains <- list(
  ar_95_60 = ar1(60, 0.95),
  ar_99_250 = ar1(250, 0.99),
  ar_5_101 = ar1(101, 0.5),
  neg_ar_37 = ar1(37, -0.6),
  shift_90 = c(rnorm(45), rnorm(45, 3)),
  white_13 = rnorm(13),
  flat_segment_30 = c(rep(2, 10), rnorm(20)),
  trend_200 = seq(0, 1, length.out = 200) + 0.1 * rnorm(200),
  short_7 = rnorm(7)
)
chains$constant_40 <- rep(3, 40)
chains$big_mean_80 <- 5e4 + ar1(80, 0.7)        # mean large against the spread: both agree
chains$tiny_spread_40 <- 1e-9 * rnorm(40) + 5    # mean / sd = 5e9: mitml's Rhat loses its digits
out <- lapply(names(chains), function(nm) {
  x <- chains[[nm]]
  n <- length(x)
  rh <- sapply(2:7, function(m) if (floor(n / m) >= 2) mitml:::.GelmanRubin(x, m) else NA)
  sdp <- mitml:::.SDprop(x)
  k <- max(1, floor((n - 3) / 2) %/% 2)   # smoothed lag 2k needs 2k + 2 <= n - 1
  list(name = nm, x = x, rhat = rh, sdprop = as.numeric(sdp), n_eff = attr(sdp, "n.eff"), k = k,
       acf = c(mitml:::.reducedACF(x, 1, smooth = 0),
               mitml:::.reducedACF(x, k, smooth = 2, sd = 0.5),
               mitml:::.reducedACF(x, 2 * k, smooth = 2, sd = 0.5)))
})
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, na = "null"), "stats.json")
