# R side of tests/test_r_crosscheck_implist_summary.py: mitml's summary() of fixed parameter
# draws. Runs panImpute briefly (the draws only need to be some chains), then writes the draws,
# mitml's per-entry statistics (summary(...)$conv) and the printed summary to summary_*.json.
# Run from this folder: Rscript make_summary.R   (mitml 0.4-4, R 4)
suppressMessages(library(mitml))
library(jsonlite)
data(studentratings)

run <- function(name, group = NULL, n.iter = 10, m = 6, constant = FALSE) {
  fml <- ReadDis + SES ~ 1 + Sex + (1 | ID)
  imp <- if (is.null(group)) {
    panImpute(studentratings, formula = fml, n.burn = 50, n.iter = n.iter, m = m, seed = 123,
              silent = TRUE)
  } else {
    panImpute(studentratings, formula = fml, n.burn = 50, n.iter = n.iter, m = m, seed = 123,
              group = group, silent = TRUE)
  }
  if (constant) {  # constant chains: Rhat 1, SDprop 0, ACF 0 (and a whole block of them)
    imp$par.imputation$sigma[1, 1, , ] <- 2
    imp$par.imputation$psi[] <- 0.5
  }
  out <- list(n_iter = n.iter, m = m, data_columns = colnames(imp$data),
              draws = lapply(imp$par.imputation, function(a) list(dim = dim(a), values = as.vector(a))),
              print = paste(capture.output(print(imp)), collapse = "\n"))
  for (spec in list(list(key = "rhat3", n = 3, g = FALSE, a = FALSE),
                    list(key = "rhat4_all", n = 4, g = TRUE, a = TRUE),
                    list(key = "rhat7_all", n = 7, g = TRUE, a = TRUE),
                    list(key = "acf_only", n = NULL, g = FALSE, a = TRUE),
                    list(key = "sdprop_only", n = 1, g = TRUE, a = FALSE))) {
    s <- summary(imp, n.Rhat = spec$n, goodness.of.appr = spec$g, autocorrelation = spec$a)
    out[[spec$key]] <- list(
      conv = lapply(s$conv, function(z) list(colnames = colnames(z), values = unname(as.matrix(z)))),
      text = paste(capture.output(print(s)), collapse = "\n"))
  }
  writeLines(toJSON(out, digits = NA, auto_unbox = TRUE), paste0("summary_", name, ".json"))
}
run("pan")
run("pan_groups", group = "FedState")
run("pan_constant", n.iter = 5, m = 4, constant = TRUE)

# Two-level jomo model (Beta2 row, stacked cluster-specific Sigma) on the first 10 work groups,
# with keep.chains = "diagonal" too (the reduced set of parameters and the printed note).
data(leadership)
lead10 <- leadership[leadership$GRPID <= 10, ]
run_jomo <- function(name, keep) {
  fml <- list(JOBSAT + NEGLEAD ~ 1 + (1 | GRPID), COHES ~ 1)
  imp <- jomoImpute(lead10, formula = fml, random.L1 = "full", n.burn = 20, n.iter = 8, m = 5,
                    seed = 42, keep.chains = keep, silent = TRUE)
  out <- list(n_iter = 8, m = 5, data_columns = colnames(imp$data),
              draws = lapply(imp$par.imputation, function(a) list(dim = dim(a), values = as.vector(a))),
              print = paste(capture.output(print(imp)), collapse = "\n"))
  s <- summary(imp, n.Rhat = 3, goodness.of.appr = TRUE, autocorrelation = TRUE)
  out$rhat3_all <- list(
    conv = lapply(s$conv, function(z) list(colnames = colnames(z), values = unname(as.matrix(z)))),
    text = paste(capture.output(print(s)), collapse = "\n"))
  writeLines(toJSON(out, digits = NA, auto_unbox = TRUE), paste0("summary_", name, ".json"))
}
run_jomo("jomo_l2", "full")
run_jomo("jomo_l2_diagonal", "diagonal")
