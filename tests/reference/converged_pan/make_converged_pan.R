# Posterior reference of R's pan for the two pan models of tests/test_pan_reference.py, from
# chains that have left pan's starting point. Run from this folder:
#   Rscript make_converged_pan.R
# Writes intro_pan.json and analysis_pan.json (layout of ../intro_pan.json: par, row, col,
# group, mean, sd, mcse), plus the R calls, seeds and each chain's smallest saved psi[1,1].
#
# Why: pan starts Psi at its prior guess Dinv / c (about 0.3 here), far below the posterior of
# ReadAchiev's between-school variance (about 1,100): the sampler stays near zero for a random
# number of iterations (seeds 1-24 of R's pan: first psi[1,1] > 200 after 106 to 2,789
# iterations, 6 of 24 still below after 3,000). The shared reference intro_pan.json (one chain,
# 2,000 burn-in) holds such a stretch among its saved draws: psi[1,1] mean 1006 and sd 451,
# where chains past it give about 1100 and 340. Here every chain burns in 20,000 iterations.
suppressMessages(library(mitml))
library(jsonlite)
data(studentratings)

cases <- list(
  intro_pan = ReadAchiev + ReadDis + SchClimate ~ 1 + (1|ID),
  analysis_pan = ReadDis + SES ~ 1 + Sex + (1|ID)
)
seeds <- 1:8
n.burn <- 20000
n.iter <- 1000
m <- 20  # 20,000 saved draws per chain (every iteration of the imputation phase)
n.batches <- 10  # batch means per chain, as mitml_jax.results.posterior.batch_means_mcse

for (name in names(cases)) {
  runs <- lapply(seeds, function(s) panImpute(studentratings, formula = cases[[name]], n.burn = n.burn,
                                                n.iter = n.iter, m = m, seed = s, silent = TRUE))
  params <- list()
  for (par in c("beta", "psi", "sigma")) {
    dims <- dim(runs[[1]]$par.imputation[[par]])  # rows, cols, draws, groups
    for (i in seq_len(dims[1])) for (j in seq_len(dims[2])) {
      draws <- sapply(runs, function(r) r$par.imputation[[par]][i, j, , 1])  # draws x chains
      size <- floor(nrow(draws) / n.batches)
      batch <- as.vector(apply(draws[seq_len(size * n.batches), , drop = FALSE], 2,
                               function(x) colMeans(matrix(x, nrow = size))))
      params[[length(params) + 1]] <- list(par = par, row = i, col = j, group = 1,
                                           mean = mean(draws), sd = sd(as.vector(draws)),
                                           mcse = sd(batch) / sqrt(length(batch)))
    }
  }
  psi11.min <- sapply(runs, function(r) min(r$par.imputation$psi[1, 1, , 1]))
  out <- list(name = name, formula = deparse(cases[[name]]),
              call = sprintf("panImpute(studentratings, formula = %s, n.burn = %d, n.iter = %d, m = %d, seed = s, silent = TRUE)",
                             deparse(cases[[name]]), n.burn, n.iter, m),
              seeds = seeds, mitml = as.character(packageVersion("mitml")),
              pan = as.character(packageVersion("pan")), psi11_min_per_chain = psi11.min,
              params = params)
  write_json(out, paste0(name, ".json"), auto_unbox = TRUE, digits = NA, pretty = TRUE)
  cat(name, ": psi[1,1] smallest saved draw per chain:", round(psi11.min, 1), "\n")
}
