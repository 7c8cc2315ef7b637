// Keeping the replicas one model: rank 0's state on every rank, exact global metric sums,
// trainable BatchNormalization over the global batch (--bn-mode sync) or averaged moving
// statistics (--bn-mode local), and the checksum that stops a run whose replicas diverged.
// Every function here is collective: every rank calls it, in the same order.
#pragma once

#include <string>

#include "parafine/core/loss.hpp"
#include "parafine/model/model.hpp"

namespace parafine {

// The loss/accuracy sums of every rank added up (exact global figures, not mean of means).
LossResult global_sum(const LossResult& local);

// Every replica takes rank 0's weights and BN statistics.
void broadcast_model_state(Model& model);

// --bn-mode sync: trainable BN layers normalise with the statistics of the global batch (their
// per-rank sums are allreduced). With false (or one rank) each BN uses its own rows.
void use_global_batch_statistics(Model& model, bool global);

// --bn-mode local: average the moving statistics of trainable BN layers over the ranks that
// had samples in the step (frozen layers' statistics never change and stay bit-identical).
void average_trainable_bn_state(Model& model);

// Throws std::runtime_error when the replicas no longer hold the same weights and statistics
// (checksums differ); `when` says where, e.g. "after phase 1 epoch 3".
void check_replicas(const Model& model, const std::string& when);

}  // namespace parafine
