# R side of tests/test_r_crosscheck_implist.py: mitml.list operations, clusterMeans and
# write.mitmlMplus on a small fixed data set (mitml 0.4-4). Run from this folder:
#   Rscript make_implist.R
# Writes implist_input.csv (the data), implist_ops.json (R's results) and the folder mplus/.
suppressMessages(library(mitml))
library(jsonlite)

# 24 rows, clusters unsorted and unbalanced, one cluster (5) without observed x, NA in x,
# string ids, a factor with a non-alphabetical level order and an unused level, a grouping.
d <- data.frame(
  id   = c(3, 1, 2, 3, 1, 4, 2, 5, 3, 1, 4, 2, 5, 3, 1, 2, 4, 4, 1, 3, 2, 5, 6, 6),
  x    = c(1.5, NA, 2.25, 3.125, -0.5, 7, NA, NA, 2, 4.75, 1/3, 5.5, NA, -2, 0.1, 3, 2/7, NA,
           9, 6, 1e-3, NA, 4, 5.5),
  y    = c(10, 11.5, 9, 8, 12, 14.25, 7, 6, 5, 3, 2, 1, 0, 4, 13, 15, 16, 17, 18, 19, 20, 21,
           22, 23),
  grp  = c("b", "a", "a", "b", "b", "a", "b", "a", "a", "b", "b", "a", "b", "a", "a", "b", "a",
           "b", "a", "b", "a", "b", "a", "a"),
  f    = factor(c("lo", "hi", "mid", "lo", "hi", "hi", "mid", "lo", "mid", "hi", "lo", "lo", "hi",
                  "mid", "lo", "hi", "mid", "lo", "hi", "mid", "lo", "hi", NA, "mid"),
                levels = c("lo", "mid", "hi", "zz")),
  stringsAsFactors = FALSE
)
d$sid <- paste0("c", d$id)                            # one string id per cluster
write.csv(d, "implist_input.csv", row.names = FALSE, na = "")

cm <- function(...) { v <- clusterMeans(...); as.vector(v) }
out <- list()
out$cm_plain <- cm(d$x, d$id)
out$cm_adj <- cm(d$x, d$id, adj = TRUE)
out$cm_group_chr <- cm(d$x, d$id, group = d$grp)
out$cm_group_chr_adj <- cm(d$x, d$id, adj = TRUE, group = d$grp)
out$cm_factor_cluster <- cm(d$x, factor(d$sid))          # factor ids: codes (strings give NA, B16)
out$cm_y_group_factor <- cm(d$y, d$id, group = d$f[c(1:22, 1, 2)])
out$cm_names <- as.vector(with(d, clusterMeans("x", "id", group = "grp")))  # names: caller frame
out$cm_string_cluster <- suppressWarnings(cm(d$x, d$sid)) # B16: all NA in R
id_na <- d$id; id_na[c(2, 9)] <- NA                        # missing cluster ids
out$cm_na_cluster <- cm(d$x, id_na)
# numeric group codes other than 1..ngr: cluster + group/(ngr + 1) can merge cells of
# different clusters (here cluster 1 x group 4 and cluster 2 x group 0: both 1 + 4/4 = 2 + 0/4)
out$cm_group_collision <- cm(c(1, 2, 10, 20, 7), c(1, 1, 2, 2, 3), group = c(4, 4, 0, 0, 1))

# imputed list: three data sets, x completed with different values
fill <- function(i) { z <- d; z$x[is.na(z$x)] <- i * 1.5 + seq_len(sum(is.na(z$x))) / 8; z }
implist <- as.mitml.list(list(fill(1), fill(2), fill(3)))
rows <- function(l) lapply(l, function(z) as.integer(rownames(z)))

# sort: one key, several keys (factor, descending key via minus), decreasing, ties kept
out$sort_id <- rows(sort(implist, by = id))
out$sort_f_id_negy <- rows(sort(implist, by = list(f, id, -y)))
out$sort_id_decr <- rows(sort(implist, by = id, decreasing = TRUE))
out$sort_x <- rows(sort(implist, by = x))          # differs per data set (x differs)
out$sort_grp_decr <- rows(sort(implist, by = grp, decreasing = TRUE))
# NA keys go last, also when decreasing; ties keep their order
na_list <- within(implist, { x[c(2, 5)] <- NA })
out$sort_na <- rows(sort(na_list, by = list(f, x)))
out$sort_na_decr <- rows(sort(na_list, by = list(f, x), decreasing = TRUE))
# subset with a condition that is NA for some rows (NA -> FALSE) and a column selection
sub <- subset(within(implist, { x[c(2, 5)] <- NA }), x > 2, select = c(y, id, x))
out$subset_rows <- rows(sub)
out$subset_cols <- colnames(sub[[1]])
out$subset_range <- colnames(subset(implist, select = x:grp)[[1]])
out$subset_minus <- colnames(subset(implist, select = -c(y, f))[[1]])
# within: new columns appended in reverse order of creation
w <- within(implist, { G.x <- clusterMeans(x, id); I.x <- x - G.x; y <- y * 2 })
out$within_cols <- colnames(w[[1]])
out$within_Gx <- lapply(w, function(z) z$G.x)
# long2mitml.list: split values out of order, exclusion, factor split
long <- do.call(rbind, lapply(3:1, function(i) cbind(imp = c(30, 10, 20)[i], implist[[i]])))
l2 <- long2mitml.list(long, split = "imp", exclude = 20)
out$long_n <- length(l2)
out$long_first_y <- lapply(l2, function(z) z$y[1:3])
out$long_rownames <- lapply(l2, function(z) rownames(z)[1:3])
out$long_cols <- colnames(l2[[1]])
long$impf <- factor(long$imp, levels = c(30, 10, 20))
l3 <- long2mitml.list(long[, -1], split = "impf")
out$long_factor_first_x <- lapply(l3, function(z) z$x[sum(is.na(d$x)) > 0 & is.na(d$x)][1])
jl <- rbind(cbind(Imputation = 0, d), cbind(Imputation = 2, implist[[2]]),
            cbind(Imputation = 1, implist[[1]]))
j2 <- jomo2mitml.list(jl)
out$jomo_n <- length(j2)
out$jomo_x_na_rows <- lapply(j2, function(z) z$x[is.na(d$x)])
# c, rbind, cbind
out$c_len <- length(c(implist, implist[1:2]))
rb <- rbind(implist, implist)
out$rbind_nrow <- sapply(rb, nrow)
cb <- cbind(implist, b = 1:3)          # a vector is split across the imputations
out$cbind_b <- lapply(cb, function(z) unique(z$b))
out$cbind_cols <- colnames(cb[[1]])

writeLines(toJSON(out, digits = NA, auto_unbox = FALSE, na = "null"), "implist_ops.json")

# write.mitmlMplus with a logical column and a character column
mp <- lapply(implist, function(z) { z$flag <- z$y > 10; z })
mp[[2]]$grp[1] <- "c"       # a character level that only one data set has
class(mp) <- c("mitml.list", "list")
dir.create("mplus", showWarnings = FALSE)
write.mitmlMplus(mp, file.path("mplus", "imp"), na.value = -999)
# the other arguments: separator, decimal comma, list-file suffix, missing-value code
write.mitmlMplus(implist, file.path("mplus", "alt"), suffix = "_files", sep = ";", dec = ",",
                 na.value = -99)

# write.mitmlSPSS: a missing string and a missing factor value, two argument sets
spl <- implist
spl[[2]]$sid[3] <- NA
dir.create("spss", showWarnings = FALSE)
write.mitmlSPSS(spl, file.path("spss", "imp"))
write.mitmlSPSS(spl, file.path("spss", "alt"), sep = ";", dec = ",", na.value = -9,
                locale = "de_DE")
