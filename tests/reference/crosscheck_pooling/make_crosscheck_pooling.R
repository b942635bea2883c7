# Cross-check fixtures for pooling (tests/test_r_crosscheck_pooling*.py).
# Run from this folder: Rscript make_crosscheck_pooling.R   (mitml 0.4-4, jomo 2.7-4, lme4 1.1-31)
# Writes leadership_completed.csv.gz (m = 10 completed data sets of `leadership`, long, .imp = 1..10),
# justice_completed.csv.gz (m = 5 of `justice`)
# and pooled.json: for each entry the R expression, its printed output and its value.
suppressMessages({library(mitml); library(lme4); library(jsonlite)})
data(leadership)
tojs <- function(x) {
  if (is.language(x) || is.function(x) || is.environment(x)) return(paste(deparse(x), collapse=""))
  if (is.data.frame(x)) x <- as.matrix(x)
  if (is.matrix(x)) return(list(rownames=rownames(x), colnames=colnames(x), values=unname(split(x, row(x)))))
  if (is.list(x)) return(lapply(x, tojs))
  if (!is.null(names(x))) return(as.list(x))
  x
}
cap <- function(x) paste(capture.output(print(x)), collapse="\n")
res <- list()
add <- function(key, expr) {
  r <- withCallingHandlers(eval(parse(text=expr)), warning=function(w) {
    warns[[length(warns) + 1]] <<- conditionMessage(w); invokeRestart("muffleWarning") })
  v <- if (is.list(r)) unclass(r)[setdiff(names(unclass(r)), "call")] else r
  res[[key]] <<- list(expr=expr, printed=cap(r), value=tojs(v), warnings=warns)
  warns <<- list()
}
warns <- list()

# testConstraints with exact (symbolic, deriv()) instead of forward-difference (numericDeriv) Jacobians;
# otherwise mitml 0.4-4's testConstraints code as it is (same pooling via mitml:::.D1 / .D2). Forward
# differences carry rounding noise of ~sqrt(eps) relative that no other implementation can reproduce.
exact_constraints <- function(fits, constraints, method="D1", ariv="default", df.com=NULL) {
  m <- length(fits); k <- length(constraints)
  Qhat <- sapply(fits, function(f) {
    b <- if (inherits(f, "merMod")) fixef(f) else coef(f)
    names(b) <- sub("(Intercept)", "Intercept", names(b), fixed=TRUE); b })
  newQhat <- matrix(NA, k, m); newUhat <- array(NA, c(k, k, m))
  for (ii in seq_len(m)) {
    theta <- Qhat[, ii]; env <- list2env(as.list(theta)); G <- matrix(NA, k, length(theta))
    for (kk in seq_len(k)) {
      val <- eval(deriv(parse(text=constraints[kk]), names(theta)), env)
      newQhat[kk, ii] <- val; G[kk, ] <- attr(val, "gradient") }
    newUhat[, , ii] <- G %*% as.matrix(vcov(fits[[ii]])) %*% t(G) }
  Qbar <- apply(newQhat, 1, mean); Ubar <- apply(newUhat, c(1, 2), mean); B <- cov(t(newQhat))
  r <- (1 + m^(-1)) * sum(diag(B %*% solve(Ubar)))/k; Ttilde <- (1 + r) * Ubar
  if (method == "D1") D <- mitml:::.D1(Qhat=newQhat, Uhat=newUhat, df.com=df.com)
  else {
    dW <- sapply(seq_len(m), function(ii) t(newQhat[, ii]) %*% solve(newUhat[, , ii]) %*% newQhat[, ii])
    D <- mitml:::.D2(d=dW, k=k); if (ariv == "positive") D$r <- max(0, D$r) }
  test <- matrix(c(D$F, k, D$v, pf(D$F, k, D$v, lower.tail=FALSE), D$r), ncol=5,
                 dimnames=list(NULL, c("F.value", "df1", "df2", "P(>F)", "RIV")))
  list(test=test, Qbar=Qbar, T=Ttilde)
}

imp <- jomoImpute(leadership, formula=list(JOBSAT + NEGLEAD + WLOAD ~ 1 + (1|GRPID), COHES ~ 1),
                  n.burn=1000, n.iter=100, m=10, seed=20261126, silent=TRUE)
implist <- mitmlComplete(imp, "all")
long <- do.call(rbind, lapply(seq_along(implist), function(i) cbind(.imp=i, implist[[i]])))
write.csv(long, gzfile("leadership_completed.csv.gz"), row.names=FALSE, na="")

# --- lm --------------------------------------------------------------------------------------------
fit.lm2 <- with(implist, lm(JOBSAT ~ NEGLEAD + WLOAD + COHES))
fit.lm1 <- with(implist, lm(JOBSAT ~ NEGLEAD))
add("lm_est", "testEstimates(fit.lm2)")
add("lm_est_extra_dfcom", "testEstimates(fit.lm2, extra.pars=TRUE, df.com=746)")
add("lm_est_dfcom_vec", "testEstimates(fit.lm2, df.com=c(20, 30, 40, 50))")
add("lm_confint_90", "confint(testEstimates(fit.lm2, df.com=746), level=0.90)")
add("lm_confint_999", "confint(testEstimates(fit.lm2), parm=c('NEGLEAD', 'COHES'), level=0.999)")
add("lm_D1", "testModels(fit.lm2, fit.lm1)")
add("lm_D1_dfcom", "testModels(fit.lm2, fit.lm1, df.com=746)")
add("lm_D2", "testModels(fit.lm2, fit.lm1, method='D2')")
add("lm_D2_lik", "testModels(fit.lm2, fit.lm1, method='D2', use='likelihood')")
add("lm_D2_lik_pos", "testModels(fit.lm2, fit.lm1, method='D2', use='likelihood', ariv='positive')")
add("lm_D3", "testModels(fit.lm2, fit.lm1, method='D3')")
add("lm_D4", "testModels(fit.lm2, fit.lm1, method='D4')")
add("lm_D4_robust", "testModels(fit.lm2, fit.lm1, method='D4', ariv='robust')")
add("lm_con_ratio_D1", "testConstraints(fit.lm2, constraints='NEGLEAD/COHES')")
add("lm_con_ratio_D1_exact", "exact_constraints(fit.lm2, 'NEGLEAD/COHES')")
add("lm_con_multi_D1_dfcom", "testConstraints(fit.lm2, constraints=c('NEGLEAD*COHES - 0.5', 'WLOADhigh/NEGLEAD', 'exp(COHES) - 1'), df.com=746)")
add("lm_con_multi_D1_dfcom_exact", "exact_constraints(fit.lm2, c('NEGLEAD*COHES - 0.5', 'WLOADhigh/NEGLEAD', 'exp(COHES) - 1'), df.com=746)")
add("lm_con_multi_D2", "testConstraints(fit.lm2, constraints=c('NEGLEAD*COHES - 0.5', 'WLOADhigh/NEGLEAD', 'exp(COHES) - 1'), method='D2')")
add("lm_con_multi_D2_exact", "exact_constraints(fit.lm2, c('NEGLEAD*COHES - 0.5', 'WLOADhigh/NEGLEAD', 'exp(COHES) - 1'), method='D2')")
add("lm_con_pow_D2_pos", "testConstraints(fit.lm2, constraints=c('Intercept + NEGLEAD^2', 'COHES'), method='D2', ariv='positive')")
add("lm_con_pow_D2_pos_exact", "exact_constraints(fit.lm2, c('Intercept + NEGLEAD^2', 'COHES'), method='D2', ariv='positive')")
add("lm_con_pnorm", "testConstraints(fit.lm2, constraints=c('pnorm(NEGLEAD) - 0.5', 'qnorm(plogis(COHES))', 'dnorm(WLOADhigh)'))")
add("lm_con_pnorm_exact", "exact_constraints(fit.lm2, c('pnorm(NEGLEAD) - 0.5', 'dnorm(WLOADhigh)'))")

# --- lmer ------------------------------------------------------------------------------------------
# lme4's default nloptwrap tolerances stop up to ~1e-5 (relative) short of the REML optimum for the
# random-slope model (REML criterion up to 5e-8 above the optimum, theta off by up to 1e-5); with these
# tolerances lme4 reaches the optimum that mitml_jax's Newton fit finds (theta within ~1e-7). The
# control argument is kept in the calls, so mitml's ML refits (D2-likelihood, D3, D4) use it too.
fit2 <- with(implist, lmer(JOBSAT ~ NEGLEAD + WLOAD + COHES + (1 + NEGLEAD|GRPID), control=lmerControl(optCtrl=list(xtol_abs=1e-12, ftol_abs=1e-14, xtol_rel=1e-12, ftol_rel=1e-14, maxeval=1e5))))
fit1 <- with(implist, lmer(JOBSAT ~ NEGLEAD + WLOAD + (1|GRPID), control=lmerControl(optCtrl=list(xtol_abs=1e-12, ftol_abs=1e-14, xtol_rel=1e-12, ftol_rel=1e-14, maxeval=1e5))))
fit0 <- with(implist, lmer(JOBSAT ~ NEGLEAD + (1|GRPID), control=lmerControl(optCtrl=list(xtol_abs=1e-12, ftol_abs=1e-14, xtol_rel=1e-12, ftol_rel=1e-14, maxeval=1e5))))
add("lmer_slope_est_extra", "testEstimates(fit2, extra.pars=TRUE)")
add("lmer_slope_est_varcomp_dfcom", "testEstimates(fit2, var.comp=TRUE, df.com=46)")
add("lmer_slope_confint_80", "confint(testEstimates(fit2, df.com=46), level=0.8)")
add("lmer_int_est_extra", "testEstimates(fit1, extra.pars=TRUE)")
add("lmer_D1", "testModels(fit1, fit0)")
add("lmer_D1_dfcom", "testModels(fit1, fit0, df.com=46)")
add("lmer_D2", "testModels(fit1, fit0, method='D2')")
add("lmer_D2_lik", "testModels(fit1, fit0, method='D2', use='likelihood')")
add("lmer_D3", "testModels(fit1, fit0, method='D3')")
add("lmer_D4", "testModels(fit1, fit0, method='D4')")
add("lmer_D4_robust", "testModels(fit1, fit0, method='D4', ariv='robust')")
add("lmer_slope_D1_dfcom", "testModels(fit2, fit0, df.com=46)")
add("lmer_slope_D3", "testModels(fit2, fit0, method='D3')")
add("lmer_slope_D4", "testModels(fit2, fit0, method='D4')")
fit3 <- with(implist, lmer(JOBSAT ~ NEGLEAD + WLOAD + COHES + (1 + NEGLEAD + WLOAD|GRPID), control=lmerControl(optCtrl=list(xtol_abs=1e-12, ftol_abs=1e-14, xtol_rel=1e-12, ftol_rel=1e-14, maxeval=1e5))))
add("lmer_slope2_est_extra", "testEstimates(fit3, extra.pars=TRUE)")
add("lmer_slope2_D3", "testModels(fit3, fit2, method='D3')")
add("lmer_slope2_D4", "testModels(fit3, fit2, method='D4')")
add("lmer_slope2_R2", "multilevelR2(fit3)")
add("lmer_con_multi_D1_dfcom", "testConstraints(fit2, constraints=c('NEGLEAD/COHES', 'NEGLEAD*WLOADhigh - 0.5'), df.com=46)")
add("lmer_con_multi_D1_dfcom_exact", "exact_constraints(fit2, c('NEGLEAD/COHES', 'NEGLEAD*WLOADhigh - 0.5'), df.com=46)")
add("lmer_con_multi_D2", "testConstraints(fit2, constraints=c('NEGLEAD/COHES', 'NEGLEAD*WLOADhigh - 0.5'), method='D2')")
add("lmer_con_multi_D2_exact", "exact_constraints(fit2, c('NEGLEAD/COHES', 'NEGLEAD*WLOADhigh - 0.5'), method='D2')")
add("lmer_anova3_D3", "anova(fit2, fit1, fit0)")
add("lmer_anova3_D4", "anova(fit0, fit2, fit1, method='D4')")
add("lmer_anova3_D2", "anova(fit2, fit1, fit0, method='D2')")
add("lmer_slope_R2", "multilevelR2(fit2)")
add("lmer_slope_R2_sub", "multilevelR2(fit2, print=c('sb', 'MVP'))")
add("lmer_int_R2", "multilevelR2(fit1)")

# --- lm: anova of three models, D4 with the data argument --------------------------------------------
fit.lm0 <- with(implist, lm(JOBSAT ~ 1))
add("lm_anova3_D3", "anova(fit.lm2, fit.lm1, fit.lm0)")
add("lm_anova3_D4", "anova(fit.lm1, fit.lm0, fit.lm2, method='D4')")
add("lm_anova3_D4_robust", "anova(fit.lm2, fit.lm1, fit.lm0, method='D4', ariv='robust')")
add("lm_anova3_D3_positive", "anova(fit.lm2, fit.lm1, fit.lm0, ariv='positive')")  # ariv ignored by D3
add("lm_D4_data", "testModels(fit.lm2, fit.lm1, method='D4', data=implist)")

# --- glm (binomial): anova falls back from D3 to D4, D2-likelihood, nonlinear constraints -------------
implist.b <- within(implist, SAT <- as.numeric(JOBSAT > 0))
glm2 <- with(implist.b, glm(SAT ~ NEGLEAD + WLOAD + COHES, family=binomial))
glm1 <- with(implist.b, glm(SAT ~ NEGLEAD, family=binomial))
glm0 <- with(implist.b, glm(SAT ~ 1, family=binomial))
add("glm_anova3", "anova(glm2, glm1, glm0)")
add("glm_D2_lik", "testModels(glm2, glm1, method='D2', use='likelihood')")
add("glm_con_exact", "exact_constraints(glm2, c('exp(NEGLEAD) - 1', 'WLOADhigh/COHES'))")

# --- estimates that do not vary across imputations: RIV 0, df Inf ----------------------------------
fit.const <- with(implist, lm(GRPID ~ 1))  # GRPID is complete: the same fit in every data set
add("lm_const_est", "testEstimates(fit.const)")
add("lm_const_confint", "confint(testEstimates(fit.const))")
add("lm_const_D1", "testConstraints(fit.const, constraints='Intercept - 25')")
add("lm_const_D2", "testConstraints(fit.const, constraints='Intercept - 25', method='D2')")
q.const <- matrix(c(rep(0.1, 10), rep(0.7, 10)), 2, byrow=TRUE, dimnames=list(c("a", "b"), NULL))
u.const <- array(diag(c(0.01, 0.02)), c(2, 2, 10))
add("const_est", "testEstimates(qhat=q.const, uhat=u.const)")
add("const_est_dfcom", "testEstimates(qhat=q.const, uhat=u.const, df.com=30)")
add("const_D1", "testConstraints(qhat=q.const, uhat=u.const, constraints=c('a - 0.3', 'b'))")
add("const_D2", "testConstraints(qhat=q.const, uhat=u.const, constraints=c('a - 0.3', 'b'), method='D2')")

# --- missing values left in a predictor (WLOAD as in the original data) ------------------------------
# lm/lmer drop those rows from the models with WLOAD only: the likelihood-based tests then compare
# log-likelihoods of different data (mitml says nothing), and multilevelR2's null model (refitted by
# update(), i.e. on all rows with JOBSAT) uses more rows than the model itself.
implist.na <- as.mitml.list(lapply(implist, function(d) { d$WLOAD[is.na(leadership$WLOAD)] <- NA; d }))
fit.na <- with(implist.na, lmer(JOBSAT ~ NEGLEAD + WLOAD + (1|GRPID)))
fit.na0 <- with(implist.na, lmer(JOBSAT ~ NEGLEAD + (1|GRPID)))
add("na_D3", "testModels(fit.na, fit.na0, method='D3')")
add("na_R2", "multilevelR2(fit.na)")
implist.cc <- as.mitml.list(lapply(implist.na, function(d) d[!is.na(d$WLOAD), ]))
fit.cc <- with(implist.cc, lmer(JOBSAT ~ NEGLEAD + WLOAD + (1|GRPID)))
add("na_R2_same_rows", "multilevelR2(fit.cc)")

# --- justice (m = 5): factor and cross-level interaction names, random slope ---------------------------
data(justice)
imp.j <- jomoImpute(justice, formula=list(sat + jor + sex ~ 1 + (1|id), jcl ~ 1),
                    n.burn=500, n.iter=100, m=5, seed=20261127, silent=TRUE)
implist.j <- mitmlComplete(imp.j, "all")
long.j <- do.call(rbind, lapply(seq_along(implist.j), function(i) cbind(.imp=i, implist.j[[i]])))
write.csv(long.j, gzfile("justice_completed.csv.gz"), row.names=FALSE, na="")
fit.j2 <- with(implist.j, lmer(sat ~ 1 + sex + jor*jcl + (1 + jor|id), control=lmerControl(optCtrl=list(xtol_abs=1e-12, ftol_abs=1e-14, xtol_rel=1e-12, ftol_rel=1e-14, maxeval=1e5))))
fit.j1 <- with(implist.j, lmer(sat ~ 1 + sex + jor + (1 + jor|id), control=lmerControl(optCtrl=list(xtol_abs=1e-12, ftol_abs=1e-14, xtol_rel=1e-12, ftol_rel=1e-14, maxeval=1e5))))
add("justice_est_extra_dfcom", "testEstimates(fit.j2, extra.pars=TRUE, df.com=100)")
add("justice_D1_dfcom", "testModels(fit.j2, fit.j1, df.com=100)")
add("justice_D2", "testModels(fit.j2, fit.j1, method='D2')")
add("justice_D3", "testModels(fit.j2, fit.j1, method='D3')")
add("justice_D4", "testModels(fit.j2, fit.j1, method='D4')")
add("justice_con", "testConstraints(fit.j2, constraints=c('`jor:jcl`', 'jor + `jor:jcl`', 'sexfemale'), df.com=100)")
add("justice_con_exact", "exact_constraints(fit.j2, c('`jor:jcl`', 'jor + `jor:jcl`', 'sexfemale'), df.com=100)")
add("justice_R2", "multilevelR2(fit.j2)")
fit.jlm <- with(implist.j, lm(sat ~ sex + jor*jcl))
add("justice_lm_est", "testEstimates(fit.jlm, extra.pars=TRUE)")
add("justice_lm_con", "testConstraints(fit.jlm, constraints=c('`jor:jcl`/jor', 'sexfemale*jcl'), method='D2')")
add("justice_lm_con_exact", "exact_constraints(fit.jlm, c('`jor:jcl`/jor', 'sexfemale*jcl'), method='D2')")
write_json(res, "pooled.json", auto_unbox=TRUE, digits=NA, pretty=TRUE, null="null", na="string")  # Inf as "Inf"
