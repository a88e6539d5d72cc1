// Package gbdt is a small histogram gradient-boosted decision tree learner
// for binary classification. Rows of float64 features go in, a compact
// model comes out. It uses the standard library only.
//
// # Algorithm
//
// The model is a base score plus a sum of regression trees on the logit
// scale; Predict applies the sigmoid. The base score is the log-odds of the
// weighted mean label of the training rows. Each boosting round computes,
// per training row, the gradient g = w·(p-y) and hessian h = w·p·(1-p) of
// the weighted log-loss at the current prediction p, then grows one tree
// depth-first up to Params.Depth. A node is split where the second-order
// gain
//
//	GL²/(HL+L2) + GR²/(HR+L2) - G²/(H+L2)
//
// is highest and positive, with both children holding at least
// MinLeafWeight of hessian; otherwise it stays a leaf. Sums G and H run over
// the node's rows. Every node's value is the Newton step -G/(H+L2) times
// LearningRate; a leaf's value is what the tree outputs.
//
// Split search works on per-node histograms of (G, H, count) per feature
// and bin. Only the smaller child's histogram is summed from its rows; the
// larger one's is the parent's minus the smaller's.
//
// # Binning
//
// Before boosting, each feature's training values are cut into at most
// Params.Bins bins. A feature with at most Bins distinct values gets one bin
// per value. Otherwise the edges sit at weighted quantiles (row weights
// count, so a row of weight 2 bins like two copies of it; rows of weight 0
// are ignored). Edges are midpoints between neighbouring training values,
// and a split on bin b stores the edge itself as threshold: "value <
// threshold goes left" on raw values matches "bin <= b" on binned ones.
// Validation rows are not used for binning. A feature with a single value
// offers no split other than present versus missing, so constant features
// are harmless.
//
// # Missing values
//
// NaN is missing. Missing values have a bin of their own. For every
// candidate threshold the search tries the missing rows on either side and
// keeps the better; one more candidate sends all present values left and
// the missing ones right, a split on missingness alone. Each split node
// stores the learned default direction. A node without missing training
// rows sends missing values to its heavier child (by hessian).
// Infinite values are rejected by Train; clip them or mark them missing.
//
// # Early stopping
//
// The last Params.ValidationShare of the rows form the validation set. Rows
// are taken as time-ordered and are not shuffled, so validation measures
// prediction of the future. After each round the weighted validation
// log-loss is recorded; with EarlyStoppingRounds > 0 training stops when it
// has not improved for that many rounds and the model keeps the trees up to
// the best round.
//
// # Attribution
//
// Contributions splits Logit(x) into a bias and one term per feature by
// Saabas path attribution: for each tree, the bias gets the root's value
// and every split on the path of x credits its feature with the change of
// value from the node to the child x takes. The changes telescope to the
// leaf value, so bias + sum(contributions) equals Logit(x) up to rounding.
// It is cheap, exact in sum, and per-path rather than Shapley-fair.
//
// # Inference
//
// All trees live in one flat slice of 16-byte nodes (threshold, feature,
// left-child index, missing direction). Leaves point to themselves, so each
// tree is descended with a fixed number of branch-free steps, and Logit
// walks eight trees at once to overlap their memory latencies. For models
// of at most 128 features Logit first copies the row twice onto the stack,
// NaN replaced by -Inf in one copy and +Inf in the other, so that a single
// comparison per node also routes missing values. Logit and Predict do not
// allocate. A Model is immutable and safe for concurrent use.
//
// # Determinism
//
// Training uses no randomness and no map iteration; summation orders are
// fixed, ties between equal gains go to the lowest feature, then bin, and
// row partitions are stable. Binning and large histograms are spread over
// goroutines by feature, each feature summed by one goroutine in row order,
// so the result does not depend on GOMAXPROCS or scheduling. The same
// Dataset and Params therefore give the same model, byte for byte in
// MarshalBinary, on every run of the same build. (Across architectures
// math.Exp and the compiler's use of fused multiply-add may round the last
// bit differently.) MarshalBinary output is versioned and checksummed, and
// UnmarshalBinary followed by MarshalBinary reproduces it exactly.
package gbdt
