# Cross-check of mitml's imputation entry points (panImpute / jomoImpute / mitmlComplete):
# which model R builds from 'type' and 'formula', the result's structure, completed-data
# structure and error messages. Run from this folder:
#   Rscript make_crosscheck_impute.R
# Writes data.csv (the scenario data), data_types.json (column classes and factor levels) and
# crosscheck_impute.json (one entry per scenario). Draws differ between R and mitml_jax, so
# only structure, names, shapes, dtypes and observed values are recorded.
suppressMessages(library(mitml))
library(jsonlite)
set.seed(4711)

# ---- scenario data: 60 rows, 13 clusters (one with a single row), unsorted, string ids ----
J <- 13
sizes <- c(1, rep(c(4, 5, 6), length.out = J - 1))
sizes[J] <- 60 - sum(sizes[-J])
cl <- rep(seq_len(J), sizes)
n <- length(cl)
ids_chr <- c("s10", "s2", "s7", "a1", "s11", "b3", "s5", "s12", "s9", "c4", "s13", "s6", "s8")
ids_num <- c(100, 3, 17, 42, 5, 8, 64, 11, 29, 2, 77, 13, 50)
u <- round(rnorm(J), 3)
d <- data.frame(
  school = ids_chr[cl],
  idnum = as.integer(ids_num[cl]),
  grp = factor(ifelse(cl %% 2 == 0, "B", "A"), levels = c("B", "A")),
  x1 = round(rnorm(n), 3),
  x2 = round(runif(n, 1, 5), 3),
  f3 = factor(sample(c("lo", "mid", "hi"), n, TRUE), levels = c("lo", "mid", "hi")),
  stringsAsFactors = FALSE
)
d$y1 <- round(1 + 0.5 * d$x1 + u[cl] + rnorm(n), 3)
d$y2 <- round(-1 + 0.3 * d$x2 + u[cl] + rnorm(n), 3)
d$yb <- factor(ifelse(d$y1 + rnorm(n) > 1, "yes", "no"), levels = c("no", "yes"))
d$yc <- factor(cut(d$y2 + rnorm(n), c(-Inf, -0.5, 0.5, Inf), labels = c("c1", "c2", "c3")),
               levels = c("c2", "c1", "c3"))
d$yo <- factor(cut(d$y1 + rnorm(n), c(-Inf, 0, 1.5, Inf), labels = c("low", "med", "high")),
               levels = c("low", "med", "high"), ordered = TRUE)
d$w <- round(u[cl] + rnorm(J)[cl], 3)
d$z2 <- round(rnorm(J)[cl], 3)
d$xmiss <- round(rnorm(n), 3)
d$extra <- as.integer(sample(1:100, n, TRUE))
d$txt <- sample(c("p", "q", "r"), n, TRUE)
# missing values
d$y1[sample(n, 12)] <- NA
d$y2[sample(n, 10)] <- NA
d$yb[sample(n, 9)] <- NA
d$yc[sample(n, 9)] <- NA
d$yo[sample(n, 8)] <- NA
miss_cl <- c(2, 5, 9)
d$w[cl %in% miss_cl] <- NA
d$xmiss[c(3, 20)] <- NA
# rows not sorted by cluster
perm <- sample(n)
d <- d[perm, ]
rownames(d) <- NULL
write.csv(d, "data.csv", row.names = FALSE, na = "")
types <- lapply(d, function(v) list(class = class(v), levels = if (is.factor(v)) levels(v) else NULL))
write_json(types, "data_types.json", auto_unbox = TRUE, pretty = TRUE, null = "null")

# ---- helpers ----
record_model <- function(imp) {
  mo <- imp$model
  fn <- attr(mo, "full.names")
  list(
    clus = mo$clus, yvrs = mo$yvrs, pvrs = mo$pvrs, qvrs = mo$qvrs,
    yvrs_L2 = mo$yvrs.L2, pvrs_L2 = mo$pvrs.L2,
    full_pvrs = fn$pvrs, full_qvrs = fn$qvrs, full_pvrs_L2 = fn$pvrs.L2,
    is_ML = attr(mo, "is.ML"), is_L2 = attr(mo, "is.L2")
  )
}
record <- function(imp, data) {
  pars <- lapply(imp$par.imputation, function(a) as.integer(dim(a)))
  ngr <- length(unique(attr(imp$data, "group")))
  c1 <- mitmlComplete(imp, print = 1)
  c0 <- mitmlComplete(imp, print = 0)
  all_l <- mitmlComplete(imp, print = "all")
  # observed cells of every column bit for bit equal to the original data (original row order)
  same_obs <- all(sapply(names(data), function(v) {
    a <- data[[v]]; b <- c1[[v]]; ok <- !is.na(a)
    if (is.factor(a)) identical(as.character(a[ok]), as.character(b[ok])) else identical(a[ok], b[ok])
  }))
  list(
    model = record_model(imp),
    print = capture.output(print(imp)),
    par_names = names(imp$par.imputation),
    par_dims = pars,
    n_groups = ngr,
    prior_names = if (inherits(imp, "pan")) names(imp$prior) else names(imp$prior[[1]]),
    prior_dims = if (inherits(imp, "pan")) lapply(imp$prior, function(p) as.integer(dim(as.matrix(p))))
                 else lapply(imp$prior[[1]], function(p) as.integer(dim(as.matrix(p)))),
    data_columns = names(imp$data),
    complete_columns = names(c1),
    complete_classes = lapply(c1, class),
    complete_levels = lapply(c1[sapply(c1, is.factor)], levels),
    complete_rownames = rownames(c1),
    n_missing_after = sum(sapply(c1[, unlist(c(imp$model$yvrs, imp$model$yvrs.L2))], function(v) sum(is.na(v)))),
    observed_identical = same_obs,
    original_identical = isTRUE(all.equal(c0[names(data)], data, check.attributes = FALSE)),
    list_length = length(all_l), list_class = class(all_l),
    force_list_class = class(mitmlComplete(imp, print = 2, force.list = TRUE)),
    index_cols = sort(unique(imp$index.mat[, 2])),
    print_vector_len = length(mitmlComplete(imp, print = c(0, 2))),
    print_vector_first_is_original = isTRUE(all.equal(mitmlComplete(imp, print = c(0, 2))[[1]], c0)),
    save_pred = if (any(!names(c1) %in% names(data))) as.list(c1[, !names(c1) %in% names(data), drop = FALSE]) else NULL,
    n_replaced = nrow(imp$replacement.mat)
  )
}
run <- function(expr) {
  w <- character(0); msgs <- character(0)
  out <- withCallingHandlers(
    tryCatch(expr, error = function(e) list(error = conditionMessage(e))),
    warning = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleWarning") },
    message = function(x) { msgs <<- c(msgs, conditionMessage(x)); invokeRestart("muffleMessage") })
  out$warnings <- w
  out$messages <- msgs
  out
}
pan <- function(...) run(record(panImpute(d, ..., n.burn = 20, n.iter = 2, m = 3, seed = 1, silent = TRUE), d))
jomo <- function(...) run(record(jomoImpute(d, ..., n.burn = 20, n.iter = 2, m = 3, seed = 1, silent = TRUE), d))
ty <- function(...) { v <- setNames(rep(0L, ncol(d)), names(d)); a <- list(...); v[names(a)] <- unlist(a); unname(v) }

S <- list()
# 1. type interface vs formula
S$pan_type <- pan(type = ty(school = -2, grp = -1, x1 = 3, x2 = 2, y1 = 1, y2 = 1))
S$pan_type_equiv <- pan(formula = y1 + y2 ~ 1 + x1 + x2 + (1 + x1 | school), group = "grp")
S$pan_type_group_arg <- pan(type = ty(school = -2, x1 = 2, y1 = 1), group = "grp")
S$jomo_type_cat <- jomo(type = ty(idnum = -2, x1 = 2, f3 = 2, y1 = 1, yb = 1, yc = 1))
S$jomo_type_L2 <- jomo(type = list(ty(idnum = -2, x1 = 3, y1 = 1, yb = 1), ty(idnum = -2, z2 = 2, w = 1)))
# mitml bug B16: string cluster ids make clusterMeans return NA, so every L2 target "varies"
S$jomo_L2_string_ids_B16 <- jomo(formula = list(y1 ~ 1 + (1 | school), w ~ 1))
S$jomo_type_single <- jomo(type = ty(x1 = 2, x2 = 2, y1 = 1, y2 = 1))
S$jomo_type_single_code3 <- jomo(type = ty(x1 = 3, x2 = 2, y1 = 1, y2 = 1))  # 3 acts as 2
S$jomo_type_group_arg <- jomo(type = ty(school = -2, x1 = 2, y1 = 1), group = "grp")
# 2. formulas
S$pan_interaction <- pan(formula = y1 + y2 ~ x1 * x2 + I(x2^2) + (1 | school))
S$pan_factor_pred <- pan(formula = y1 ~ 1 + f3 + x1:f3 + (1 + x1 | school))
S$pan_no_intercept <- pan(formula = y1 + y2 ~ 0 + x1 + x2 + (1 | school))
S$pan_random_no_int <- pan(formula = y1 ~ 1 + x1 + (0 + x1 | school))
S$pan_random_only_slope_not_fixed <- pan(formula = y1 ~ 1 + (1 + x2 | idnum))
S$pan_log_poly <- pan(formula = y1 ~ 1 + log(x2) + poly(x1, 2) + (1 | school))
S$pan_group <- pan(formula = y1 + y2 ~ 1 + x1 + (1 | school), group = "grp")
S$pan_save_pred <- run(record(panImpute(d, formula = y1 ~ 1 + f3 + I(x1 * x2) + (1 | school),
                                        n.burn = 20, n.iter = 2, m = 3, seed = 1, silent = TRUE,
                                        save.pred = TRUE), d))
S$jomo_cat_targets <- jomo(formula = y1 + yb + yc ~ 1 + x1 + (1 | school))
S$jomo_cat_first <- jomo(formula = yc + y1 + yb ~ 1 + x1 + (1 | school))
S$jomo_ordered <- jomo(formula = yo + y2 ~ 1 + x1 + (1 | school))
S$jomo_L2_list <- jomo(formula = list(y1 + yb ~ 1 + x1 + (1 | idnum), w ~ 1 + z2))
S$jomo_L2_cm <- jomo(formula = list(y1 ~ 1 + x1 + (1 | idnum), w ~ 1 + x1))
S$jomo_randomL1_mean <- jomo(formula = y1 + y2 ~ 1 + x1 + (1 | school), random.L1 = "mean")
S$jomo_randomL1_full <- jomo(formula = y1 + y2 ~ 1 + x1 + (1 | school), random.L1 = "full")
S$jomo_randomL1_diag <- run(record(jomoImpute(d, formula = y1 + y2 ~ 1 + x1 + (1 | school), random.L1 = "full",
                                              keep.chains = "diagonal", n.burn = 20, n.iter = 2, m = 3, seed = 1,
                                              silent = TRUE), d))
S$jomo_single_level <- jomo(formula = y1 + yb ~ 1 + x1 + f3)
S$jomo_group_cat <- jomo(formula = y1 + yc ~ 1 + x1 + (1 | school), group = "grp")
S$pan_numeric_clusters <- pan(formula = y1 ~ 1 + x1 + (1 | idnum))
S$pan_target_complete <- pan(formula = y1 + x2 ~ 1 + x1 + (1 | school))
# 4. data quirks: errors
S$err_pred_missing <- pan(formula = y1 ~ 1 + xmiss + (1 | school))
S$err_jomo_pred_missing <- jomo(formula = y1 ~ 1 + xmiss + (1 | school))
S$pan_factor_target <- pan(formula = yb ~ 1 + (1 | school))
S$err_jomo_char_target <- jomo(formula = txt ~ 1 + (1 | school))
S$err_transformed_target <- pan(formula = log(x2) ~ 1 + (1 | school))
S$err_no_missing <- pan(formula = x1 ~ 1 + (1 | school))
S$err_L2_target_varies <- jomo(formula = list(y1 ~ 1 + (1 | idnum), y2 ~ 1))
S$err_randomL1_single <- jomo(formula = y1 ~ 1 + x1, random.L1 = "mean")
S$err_pan_no_cluster <- pan(formula = y1 ~ 1 + x1)
S$err_three_formulas <- jomo(formula = list(y1 ~ 1 + (1 | school), w ~ 1, y2 ~ 1))
S$err_type_length <- pan(type = c(-2, 1, 2))
S$err_two_clusters <- pan(type = ty(school = -2, idnum = -2, y1 = 1))
S$err_group_missing <- pan(formula = y1 ~ 1 + (1 | school), group = "nonexistent")
# 5. priors
S$pan_prior_ok <- pan(formula = y1 + y2 ~ 1 + x1 + (1 + x1 | school),
                      prior = list(a = 3, Binv = diag(2), c = 5, Dinv = diag(4)))
S$err_pan_prior_missing_c <- pan(formula = y1 + y2 ~ 1 + x1 + (1 | school),
                                 prior = list(a = 2, Binv = diag(2), Dinv = diag(2)))
S$pan_prior_Binv_dim <- pan(formula = y1 + y2 ~ 1 + x1 + (1 | school),
                                prior = list(a = 2, Binv = diag(3), c = 2, Dinv = diag(2)))
S$err_pan_prior_Dinv_dim <- pan(formula = y1 + y2 ~ 1 + x1 + (1 + x1 | school),
                                prior = list(a = 2, Binv = diag(2), c = 4, Dinv = diag(2)))
S$jomo_prior_ok <- jomo(formula = y1 + yb ~ 1 + x1 + (1 | school),
                        prior = list(Binv = diag(2), Dinv = diag(2)))
S$jomo_prior_ok_a <- jomo(formula = y1 + y2 ~ 1 + x1 + (1 | school), random.L1 = "mean",
                          prior = list(Binv = diag(2), Dinv = diag(2), a = 4))
S$jomo_prior_groups <- jomo(formula = y1 ~ 1 + x1 + (1 | school), group = "grp",
                            prior = list(list(Binv = diag(1), Dinv = diag(1)), list(Binv = 2 * diag(1), Dinv = diag(1))))
S$err_jomo_prior_Binv_dim <- jomo(formula = y1 + y2 ~ 1 + x1 + (1 | school),
                                  prior = list(Binv = diag(3), Dinv = diag(2)))
S$jomo_prior_Dinv_dim <- jomo(formula = y1 + y2 ~ 1 + x1 + (1 | school),
                                  prior = list(Binv = diag(2), Dinv = diag(3)))
S$jomo_prior_missing_Dinv <- jomo(formula = y1 + y2 ~ 1 + x1 + (1 | school),
                                      prior = list(Binv = diag(2)))

# mitmlComplete argument errors
imp0 <- panImpute(d, formula = y1 ~ 1 + (1 | school), n.burn = 5, n.iter = 1, m = 2, seed = 1, silent = TRUE)
S$complete_err_two_zero <- run(mitmlComplete(imp0, print = c(0, -1)))
S$complete_err_string <- run(mitmlComplete(imp0, print = "first"))
# model matrices (values to full precision) for formula right-hand sides
rhs <- c("1 + log(x2) + poly(x1, 2)", "x1 * x2 + I(x2^2)", "1 + f3 + x1:f3", "0 + f3 + x1",
         "poly(x2, 3, raw = TRUE) + poly(x1, 2):f3", "1 + grp * f3", "1 + sqrt(x2) + exp(x1) + I(x1 > 0)",
         "1 + txt + idnum", "0 + txt:x1 + grp", "x1 + f3 + x1:f3 + x2:grp:f3")
rhs <- c(rhs, "1 + yo + x1:yo", "0 + yo", "yb * yo")  # ordered factors: contr.poly; NA rows kept
S$model_matrices <- lapply(setNames(rhs, rhs), function(r) {
  mf <- model.frame(as.formula(paste("~", r)), d, na.action = na.pass)
  mm <- model.matrix(as.formula(paste("~", r)), mf)
  list(names = colnames(mm), values = unname(as.list(as.data.frame(mm))))
})
# long2mitml.list: order of the data sets (factor levels, numbers), exclude, dropped split column
lx <- data.frame(.imp = factor(c("B", "A", "B", "A", "C", "C"), levels = c("C", "B", "A")),
                 v = 1:6, w = c(1.5, NA, 2, 3, 4, 5), check.names = FALSE)
S$long_factor <- lapply(long2mitml.list(lx, ".imp"), function(z) list(v = z$v, cols = names(z)))
S$long_factor_exclude <- lapply(long2mitml.list(lx, ".imp", exclude = "C"), function(z) list(v = z$v, cols = names(z)))
ln <- data.frame(imp = c(2, 10, 1, 2, 10, 1, 0, 0), v = 1:8)
S$long_numeric <- lapply(long2mitml.list(ln, "imp", exclude = 0), function(z) list(v = z$v, cols = names(z)))
# more formula forms: the model mitml builds (imp$model) and print(imp)
F <- list(
  pan_two_bars = y1 ~ 1 + x1 + (1 | school) + (1 | idnum),
  pan_minus_one = y1 ~ -1 + x1 + (1 | school),
  pan_implicit_random_intercept = y1 ~ x1 + (x1 | school),
  pan_bar_first = y1 ~ 1 + (1 | school) + x1,
  pan_x_minus_1 = y1 ~ x1 - 1 + (1 | school),
  pan_power2 = y1 ~ (x1 + x2 + f3)^2 + (1 | school),
  pan_factor_by_group = y1 + y2 ~ f3 * grp + (1 | school),
  pan_cluster_means = y1 ~ 1 + x1 + clusterMeans(x1, idnum) + (1 | idnum),
  pan_factor_of_number = y1 ~ 1 + factor(idnum > 20) + (1 | school),
  pan_random_factor = y1 ~ 1 + x1 + (1 + f3 | school),
  pan_nested_interaction = y1 ~ f3 / x1 + (1 | school),
  pan_backtick_poly3 = y1 ~ poly(x2, 3) + (1 | school)
)
for (nm in names(F)) S[[nm]] <- pan(formula = F[[nm]])
S$jomo_L2_pred_interaction <- jomo(formula = list(y1 ~ 1 + x1 + (1 | idnum), w ~ 1 + z2 * grp + I(z2^2)))
# B4: save.pred drops level-2 derived predictors (I(z2^2)); level-1 ones (x1:x2) are kept
S$jomo_save_pred_B4 <- run(record(jomoImpute(d, formula = list(y1 ~ 1 + x1:x2 + (1 | idnum), w ~ 1 + I(z2^2)),
                                             n.burn = 20, n.iter = 2, m = 3, seed = 1, silent = TRUE,
                                             save.pred = TRUE), d))
# B8: an intermediate level that is never observed ("mid" of yc2): the labels R assigns
d8 <- d
d8$yc2 <- factor(ifelse(d$yc == "c1", "mid", as.character(d$yc)), levels = c("c2", "mid", "c3"))
d8$yc2[d8$yc2 == "mid"] <- NA
d8$yc2 <- factor(as.character(d8$yc2), levels = c("c2", "mid", "c3"))
imp8 <- jomoImpute(d8, formula = yc2 ~ 1 + x1 + (1 | school), n.burn = 20, n.iter = 2, m = 3, seed = 1, silent = TRUE)
S$jomo_unobserved_level_B8 <- list(
  levels = levels(d8$yc2),
  observed = sort(unique(as.character(d8$yc2[!is.na(d8$yc2)]))),
  imputed = sort(unique(unlist(lapply(mitmlComplete(imp8, "all"), function(z) as.character(z$yc2[is.na(d8$yc2)]))))),
  numcat = as.integer(attr(imp8$data, "levels")),
  par_dims = lapply(imp8$par.imputation, function(a) as.integer(dim(a))))
# keep.chains = "diagonal"
S$pan_diag <- run(record(panImpute(d, formula = y1 + y2 ~ 1 + x1 + (1 + x1 | school), keep.chains = "diagonal",
                                   n.burn = 20, n.iter = 2, m = 3, seed = 1, silent = TRUE), d))
S$jomo_L2_diag <- run(record(jomoImpute(d, formula = list(y1 + yb ~ 1 + x1 + (1 | idnum), w ~ 1 + z2),
                                        keep.chains = "diagonal", n.burn = 20, n.iter = 2, m = 3, seed = 1,
                                        silent = TRUE), d))
# more priors: what R accepts (result's prior names) or the error it raises
probe <- function(expr) run(list(prior_names = { x <- expr; if (inherits(x, "pan")) names(x$prior) else names(x$prior[[1]]) },
                                n_prior = { if (inherits(x, "pan")) 1L else length(x$prior) }))
fp <- y1 + y2 ~ 1 + x1 + (1 | school)
PJ <- function(...) jomoImpute(d, formula = fp, n.burn = 5, n.iter = 1, m = 1, seed = 1, silent = TRUE, ...)
PP <- function(...) panImpute(d, formula = fp, n.burn = 5, n.iter = 1, m = 1, seed = 1, silent = TRUE, ...)
I2 <- diag(2)
S$prior_jomo_3_for_2_groups <- probe(PJ(group = "grp", prior = list(list(Binv = I2, Dinv = I2), list(Binv = I2, Dinv = I2), list(Binv = I2, Dinv = I2))))
S$prior_jomo_1_for_2_groups <- probe(PJ(group = "grp", prior = list(list(Binv = I2, Dinv = I2))))
S$prior_jomo_list_no_group <- probe(PJ(prior = list(list(Binv = I2, Dinv = I2))))
S$prior_jomo_a_with_none <- probe(PJ(prior = list(Binv = I2, Dinv = I2, a = 7)))
S$prior_jomo_missing_Binv <- probe(PJ(prior = list(Dinv = I2)))
S$prior_jomo_extra_component <- probe(PJ(prior = list(Binv = I2, Dinv = I2, zz = 1)))
S$prior_jomo_mean_without_a <- probe(PJ(random.L1 = "mean", prior = list(Binv = I2, Dinv = I2)))
S$prior_jomo_Binv_not_pd <- probe(PJ(prior = list(Binv = -I2, Dinv = I2)))
S$prior_pan_extra_component <- probe(PP(prior = list(a = 2, Binv = I2, c = 2, Dinv = I2, zz = 1)))
S$prior_pan_a_too_small <- probe(PP(prior = list(a = 0.5, Binv = I2, c = 2, Dinv = I2)))
S$prior_pan_Binv_not_pd <- probe(PP(prior = list(a = 2, Binv = -I2, c = 2, Dinv = I2)))
S$prior_pan_list_per_group <- probe(PP(group = "grp", prior = list(list(a = 2, Binv = I2, c = 2, Dinv = I2), list(a = 2, Binv = I2, c = 2, Dinv = I2))))
# model problems: R accepts (possibly with garbage) or fails inside pan's Fortran code
S$pan_cluster_as_predictor <- pan(formula = y1 ~ 1 + idnum + (1 | idnum))
S$err_group_as_predictor <- pan(formula = y1 ~ 1 + grp + (1 | school), group = "grp")
S$err_collinear_predictors <- pan(formula = y1 ~ 1 + x1 + I(2 * x1) + (1 | school))
S$err_target_as_predictor <- pan(formula = y1 ~ 1 + y2 + (1 | school))
S$pan_target_is_cluster <- pan(formula = y1 ~ 1 + (1 | y1))
S$pan_duplicate_target_in_formula <- pan(formula = y1 + y1 ~ 1 + (1 | school))
S$err_group_is_cluster <- pan(formula = y1 ~ 1 + (1 | school), group = "school")
# rows of the imputations: cluster k's y1 is shifted by 20 k (clusters in data order of first
# appearance), group "A" also by +200; per cluster, the mean imputed y1 (over m = 5). pan mixes
# slowly at this intra-class correlation (not converged after 200 iterations, in R as here).
d12 <- d
k12 <- match(d12$school, unique(d12$school))
d12$y1 <- d12$y1 + 20 * k12 + ifelse(d12$grp == "A", 200, 0)
row_means <- function(imp) {
  cm <- Reduce(`+`, lapply(mitmlComplete(imp, "all"), function(z) z$y1)) / 5
  miss <- is.na(d12$y1)
  tapply(cm[miss], d12$school[miss], mean)
}
S$rows_pan_group <- as.list(row_means(panImpute(d12, formula = y1 + y2 ~ 1 + x1 + (1 | school), group = "grp",
                                                n.burn = 2000, n.iter = 20, m = 5, seed = 1, silent = TRUE)))
S$rows_jomo_group <- as.list(row_means(jomoImpute(d12, formula = y1 + yb ~ 1 + x1 + (1 | school), group = "grp",
                                                  n.burn = 2000, n.iter = 20, m = 5, seed = 1, silent = TRUE)))
S$rows_observed_means <- as.list(tapply(d12$y1, d12$school, mean, na.rm = TRUE))
# level-2 formula with a '|' term (dropped) and a categorical level-2 target
S$jomo_L2_with_bar <- jomo(formula = list(y1 ~ 1 + (1 | idnum), w ~ 1 + z2 + (1 | idnum)))
d13 <- d
d13$wcat <- factor(ifelse(d$w > 0, "pos", "neg"), levels = c("pos", "neg"))
imp13 <- jomoImpute(d13, formula = list(y1 ~ 1 + x1 + (1 | idnum), wcat + w ~ 1 + z2), n.burn = 20, n.iter = 2,
                    m = 3, seed = 1, silent = TRUE)
S$jomo_L2_cat_target <- c(record(imp13, d13)[c("model", "print", "par_names", "par_dims", "prior_dims",
                                                "complete_classes", "complete_levels", "observed_identical",
                                                "n_missing_after")],
                          list(constant = all(sapply(mitmlComplete(imp13, "all"), function(z)
                            all(tapply(as.character(z$wcat), z$idnum, function(v) length(unique(v))) == 1)))))
# groups with different numbers of clusters and of observed categories (NA-padded arrays)
S$jomo_group_randomL1_full <- jomo(formula = y1 + y2 ~ 1 + x1 + (1 | school), group = "grp", random.L1 = "full")
d9 <- d
d9$yc[d9$grp == "A" & d9$yc %in% "c3"] <- NA
rec9 <- function(imp) list(par_dims = lapply(imp$par.imputation, function(a) as.integer(dim(a))),
                           numcat = unname(attr(imp$data, "levels")),
                           print = capture.output(print(imp)),
                           imputed = lapply(split(seq_len(nrow(d9)), d9$grp), function(rows)
                             sort(unique(unlist(lapply(mitmlComplete(imp, "all"), function(z)
                               as.character(z$yc[rows][is.na(d9$yc[rows])])))))))
S$jomo_group_numcat <- rec9(jomoImpute(d9, formula = y1 + yc ~ 1 + x1 + (1 | school), group = "grp",
                                       n.burn = 20, n.iter = 2, m = 3, seed = 1, silent = TRUE))
# a categorical target without missing values next to one with
S$jomo_complete_cat_target <- jomo(formula = y1 + f3 ~ 1 + x1 + (1 | school))
# an integer target with missing values: the completed column becomes numeric
d10 <- d
d10$cnt <- as.integer(round(10 * d$x2))
d10$cnt[is.na(d$y1)] <- NA
imp10 <- panImpute(d10, formula = cnt ~ 1 + x1 + (1 | school), n.burn = 20, n.iter = 2, m = 3, seed = 1, silent = TRUE)
S$pan_integer_target <- list(class_before = class(d10$cnt), class_after = class(mitmlComplete(imp10, 1)$cnt),
                             class_original = class(mitmlComplete(imp10, 0)$cnt))
write_json(S, "crosscheck_impute.json", auto_unbox = TRUE, pretty = FALSE, null = "null", digits = NA)
cat("scenarios:", length(S), "\n")
for (s in names(S)) cat(s, ":", if (!is.null(S[[s]]$error)) paste("ERROR", S[[s]]$error) else "ok",
                        if (length(S[[s]]$warnings)) paste("WARN", S[[s]]$warnings) else "", "\n")
