// The two-phase training loop (see trainer.hpp).
#include "parafine/train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <memory>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "parafine/core/adam.hpp"
#include "parafine/train/checkpoint.hpp"
#include "parafine/dist/comm.hpp"
#include "parafine/train/epoch_feed.hpp"
#include "parafine/dist/gradient_sync.hpp"
#include "parafine/layers/batch_norm.hpp"
#include "parafine/layers/dense.hpp"
#include "parafine/train/progress.hpp"
#include "parafine/model/resnet50.hpp"
#include "parafine/train/training_caches.hpp"

namespace parafine {

namespace {

const Tensor& logits_of(const Model& model) {
  const auto* head = dynamic_cast<const Dense*>(&model.layer(model.size() - 1));
  if (!head || head->activation() != Activation::kSoftmax)
    throw std::logic_error("the model's last layer must be a softmax Dense");
  return head->logits();
}

void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}


void unfreeze(Model& model, const TrainConfig& c) {
  if (!c.unfreeze_from.empty())
    unfreeze_base_from(model, c.unfreeze_from);
  else
    unfreeze_last_base_layers(model, c.unfreeze_last);
}

LossResult global_sum(const LossResult& local) {
  std::vector<double> v{local.loss_sum, static_cast<double>(local.correct), static_cast<double>(local.count)};
  Comm::allreduce_sum(v);
  LossResult r;
  r.loss_sum = v[0];
  r.correct = static_cast<int>(v[1]);
  r.count = static_cast<int>(v[2]);
  return r;
}

std::vector<BatchNormalization*> batch_norms(Model& model) {
  std::vector<BatchNormalization*> bns;
  for (int i = 0; i < model.size(); ++i)
    if (auto* bn = dynamic_cast<BatchNormalization*>(&model.layer(i))) bns.push_back(bn);
  return bns;
}

// --bn-mode local: average the moving statistics of trainable BN layers over the ranks that
// had samples in the step (frozen layers' statistics never change and stay bit-identical).
void average_trainable_bn_state(Model& model) {
  if (Comm::size() == 1) return;
  for (const ParamRef& r : model.param_refs()) {
    if (r.optimised || !model.layer(r.node).trainable) continue;
    const auto* bn = dynamic_cast<const BatchNormalization*>(&model.layer(r.node));
    const float had = bn && bn->last_rows() > 0 ? 1.0f : 0.0f;
    float* v = model.data(r);
    std::vector<float> weighted(v, v + r.shape.numel());
    for (float& x : weighted) x *= had;
    weighted.push_back(had);
    Comm::allreduce_sum(weighted.data(), weighted.size());
    const float ranks_with_rows = weighted.back();
    if (ranks_with_rows > 0)
      for (std::size_t k = 0; k < r.shape.numel(); ++k) v[k] = weighted[k] / ranks_with_rows;
  }
}

// Stops the job when the replicas no longer hold the same weights.
void check_replicas(const Model& model, int phase, int epoch) {
  if (Comm::size() == 1) return;
  double sum = 0;
  for (float v : model.params()) sum += v;
  for (float v : model.state()) sum += v;
  double lo = sum, hi = sum;
  Comm::allreduce_min_max(lo, hi);
  if (lo != hi)
    throw std::runtime_error("replicas diverged after phase " + std::to_string(phase) + " epoch " +
                             std::to_string(epoch) + " (weight checksums range " + std::to_string(lo) + " .. " +
                             std::to_string(hi) + "); this is a bug or a hardware fault: stopping");
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct StepTimes {
  double data = 0, comm = 0, total = 0;
};

// Steps first_step.. of one epoch. `carry` holds the global sums of the steps taken before a
// resume. after_step(steps_done, global_sums) returns true to stop early; then `stopped` is set.
// Returns the exact global loss/accuracy sums of the epoch's steps (carry included).
LossResult train_epoch(Model& model, Adam& adam, EpochFeed& batches, const ShardPlan& plan, const TrainConfig& c,
                       int phase, int first_step, const LossResult& carry,
                       const std::function<bool(int, const LossResult&)>& after_step, bool& stopped,
                       std::ostream* progress_out, StepTimes& times) {
  const auto epoch_start = Clock::now();
  Progress progress(progress_out, plan.steps());
  Batch batch;
  Tensor dlogits;
  LossResult sum = carry;  // global sums, the same on every rank
  stopped = false;
  const std::size_t n = model.trainable_size();
  const std::size_t bucket_floats = static_cast<std::size_t>(c.bucket_mb * 1024 * 1024 / sizeof(float));
  int images = 0;
  while (true) {
    auto t = Clock::now();
    const double comm_before = batches.comm_seconds();
    if (!batches.next(batch)) break;
    const double routing = batches.comm_seconds() - comm_before;
    times.data += seconds_since(t) - routing;
    times.comm += routing;
    const int step = first_step + batch.step;
    batches.forward(model, batch.images, true);
    const Range global = plan.global_range(step);
    const LossResult r = softmax_cross_entropy(logits_of(model), batch.labels, global.end - global.begin, &dlogits);
    // The global batch's mean gradient: buckets are summed over ranks while backward goes on.
    GradientSync sync(model.grads().data(), n, bucket_floats);
    model.backward(dlogits, [&sync](std::size_t filled) { sync.ready(filled); });
    times.comm += sync.finish();
    t = Clock::now();
    const LossResult step_sums = global_sum(r);
    times.comm += seconds_since(t);
    if (!std::isfinite(step_sums.loss_sum))
      throw std::runtime_error("phase " + std::to_string(phase) + ": the loss became " + std::to_string(step_sums.loss_sum) +
                               " at step " + std::to_string(step + 1) +
                               " (diverged: lower the learning rate, check the input data); the last checkpoint "
                               "(if any) holds the last good state");
    adam.step(model.params().data(), model.grads().data());
    if (c.bn_mode == BnMode::kLocal) average_trainable_bn_state(model);
    sum += step_sums;
    images += step_sums.count;
    progress.update(step + 1, sum, images, seconds_since(epoch_start));
    if (after_step && after_step(step + 1, sum)) {
      stopped = true;
      break;
    }
  }
  times.total += seconds_since(epoch_start);
  return sum;
}

void log_epoch(std::ostream& log, const EpochStats& s, bool has_val) {
  const std::ios_base::fmtflags flags = log.flags();
  const std::streamsize precision = log.precision();
  log << "phase " << s.phase << " epoch " << s.epoch << ": loss " << std::fixed << std::setprecision(4) << s.loss
      << " - accuracy " << s.accuracy;
  if (has_val) log << " - val_loss " << s.val_loss << " - val_accuracy " << s.val_accuracy;
  log << " - " << std::setprecision(1) << s.seconds << "s (" << s.images_per_second << " img/s; rank 0: compute "
      << std::setprecision(2) << s.compute_seconds << "s, exposed communication " << s.comm_seconds << "s, data wait "
      << s.data_wait_seconds << "s)" << std::endl;
  log.flags(flags);
  log.precision(precision);
}

void check_classes(const Model& model, const SampleSource& data, const char* option) {
  const int classes = model.output_shape(model.size() - 1, 1)[1];
  if (data.classes() != classes)
    throw std::invalid_argument(std::string(option) + " has " + std::to_string(data.classes()) +
                                " classes, the model's dense_1 has " + std::to_string(classes));
}

// Where the run starts, with every replica holding rank 0's state: the newest checkpoint for
// --resume (its optimizer state in `resumed`), else (phase 1, epoch 1, step 0) from the given
// weights, after calibrating the frozen BN statistics when asked.
TrainPosition starting_state(Model& model, const SampleSource& train, const TrainConfig& c, std::ostream& log,
                             Checkpoint& resumed) {
  TrainPosition from;
  if (c.resume) {
    // Rank 0 chooses and reads the checkpoint, so every rank continues from the same one.
    if (Comm::is_root()) resumed = load_latest_checkpoint(c.checkpoint_dir, model, log);
    broadcast_checkpoint(resumed);
    from = resumed.position;
    auto same = [&](bool ok, const std::string& what) {
      if (!ok)
        throw std::invalid_argument("--resume: " + resumed.path + " was written with " + what +
                                    "; the data order would differ, so the run cannot continue bit for bit");
    };
    same(from.seed == c.seed, "--seed " + std::to_string(from.seed));
    same(from.batch_size == c.batch_size, "--batch-size " + std::to_string(from.batch_size));
    same(from.samples == train.size(), std::to_string(from.samples) + " training samples");
    if (Comm::is_root()) {  // the other replicas get them with the broadcast below
      model.set_weights(resumed.params, resumed.state);
    }
    log << "resuming from " << resumed.path << " (phase " << from.phase << ", epoch " << from.epoch << ", step "
        << from.step << ")" << std::endl;
  } else if (c.calibrate_bn_samples > 0) {
    const int n = std::min(train.size(), c.calibrate_bn_samples);
    const std::vector<int> order = epoch_order(train.size(), true, c.seed, -1);
    BatchPrefetcher one(train, {std::vector<int>(order.begin(), order.begin() + n)},
                        prefetch_config(c, Augment::kNone, -1));
    Batch batch;
    one.next(batch);
    model.calibrate_batch_norm(batch.images);  // the same batch on every rank: no reducer yet
    log << "randomly initialised base: frozen BatchNormalization statistics calibrated on " << n
        << " training images" << std::endl;
  }
  // Every replica starts from rank 0's state.
  Comm::broadcast(model.params().data(), model.params().size());
  Comm::broadcast(model.state().data(), model.state().size());
  return from;
}

}  // namespace

PrefetchConfig prefetch_config(const TrainConfig& c, Augment augment, int epoch) {
  PrefetchConfig p;
  p.image_size = c.image_size;
  p.preprocess = c.preprocess;
  p.augment = augment;
  p.seed = c.seed;
  p.epoch = epoch;
  p.threads = c.loader_threads;
  return p;
}

BnMode parse_bn_mode(const std::string& name) {
  if (name == "sync") return BnMode::kSync;
  if (name == "local") return BnMode::kLocal;
  if (name == "frozen") return BnMode::kFrozen;
  throw std::invalid_argument("--bn-mode must be sync, local or frozen, got '" + name + "'");
}

void validate(const TrainConfig& c) {
  require(c.batch_size >= 1, "--batch-size must be at least 1, got " + std::to_string(c.batch_size));
  require(c.phase1_epochs >= 0, "--phase1-epochs must be >= 0, got " + std::to_string(c.phase1_epochs));
  require(c.phase2_epochs >= 0, "--phase2-epochs must be >= 0, got " + std::to_string(c.phase2_epochs));
  require(std::isfinite(c.phase1_lr) && c.phase1_lr >= 0, "--phase1-lr must be a finite number >= 0");
  require(std::isfinite(c.phase2_lr) && c.phase2_lr >= 0, "--phase2-lr must be a finite number >= 0");
  require(c.unfreeze_last >= 0 && c.unfreeze_last <= kResNet50BaseLayers,
          "--unfreeze-last must be between 0 and 175, got " + std::to_string(c.unfreeze_last));
  require(c.image_size >= 32, "--image-size must be at least 32, got " + std::to_string(c.image_size));
  require(c.loader_threads >= 1, "loader threads must be at least 1");
  require(c.bucket_mb > 0 && std::isfinite(c.bucket_mb), "--bucket-mb must be a positive number of MiB");
  require(c.calibrate_bn_samples >= 0, "calibration sample count must be >= 0");
}

namespace {

// Global loss/accuracy sums over every batch of `batches`, BN in inference mode.
LossResult evaluate_feed(Model& model, EpochFeed& batches) {
  Batch batch;
  LossResult total;
  while (batches.next(batch)) {
    batches.forward(model, batch.images, false);
    const LossResult r = softmax_cross_entropy(logits_of(model), batch.labels, 1.0, nullptr);
    total += r;
  }
  return global_sum(total);
}

}  // namespace

LossResult evaluate(Model& model, const SampleSource& data, int batch_size, int image_size, Preprocess preprocess,
                    int loader_threads) {
  const ShardPlan plan(data.size(), batch_size, Comm::size(), Comm::rank(), false, 0, "the evaluation data");
  PrefetchConfig p;
  p.image_size = image_size;
  p.preprocess = preprocess;
  p.threads = loader_threads;
  EpochFeed batches(data, plan.local_batches(0), p);
  return evaluate_feed(model, batches);
}

std::vector<EpochStats> run_two_phase(Model& model, const SampleSource& train, const SampleSource* val,
                                      const TrainConfig& c, std::ostream& log,
                                      const std::function<void(const EpochStats&)>& on_epoch) {
  validate(c);
  check_classes(model, train, "--train");
  if (val) check_classes(model, *val, "--val");
  std::vector<EpochStats> history;
  for (BatchNormalization* bn : batch_norms(model)) {
    bn->set_inference_only(c.bn_mode == BnMode::kFrozen);
    bn->set_sum_reducer(nullptr);
  }
  freeze_base(model);
  Checkpoint resumed;
  const TrainPosition from = starting_state(model, train, c, log, resumed);
  // --bn-mode sync: trainable BN layers normalise with the global batch's statistics.
  if (c.bn_mode == BnMode::kSync && Comm::size() > 1)
    for (BatchNormalization* bn : batch_norms(model))
      bn->set_sum_reducer([](std::vector<double>& sums) { Comm::allreduce_sum(sums); });
  unfreeze(model, c);  // phase 2's trainable layers decide its cache cut
  const int phase2_first = model.first_trainable_node();
  freeze_base(model);
  const TrainingCaches caches = build_training_caches(model, train, val, c, phase2_first, from.phase, log);
  const CachePlan& cache_plan = caches.plan;
  const ShardPlan train_plan(train.size(), c.batch_size, Comm::size(), Comm::rank(), c.shuffle, c.seed, "--train");

  const bool checkpoints = !c.checkpoint_dir.empty();
  auto checkpoint = [&](const Adam* adam, TrainPosition at) {
    at.seed = c.seed;
    at.batch_size = c.batch_size;
    at.samples = train.size();
    if (checkpoints && Comm::is_root()) save_checkpoint(c.checkpoint_dir, model, adam, at, c.keep_checkpoints);
  };
  long steps_this_run = 0;
  for (int phase = from.phase; phase <= 2; ++phase) {
    const int epochs = phase == 1 ? c.phase1_epochs : c.phase2_epochs;
    const double lr = phase == 1 ? c.phase1_lr : c.phase2_lr;
    if (phase == 2 && epochs > 0) {
      unfreeze(model, c);
      log << "phase 2: " << (c.unfreeze_from.empty() ? "last " + std::to_string(c.unfreeze_last) + " base layers"
                                                      : "base layers from " + c.unfreeze_from)
          << " unfrozen (from " << model.layer(model.first_trainable_node()).name() << ", "
          << model.trainable_size() << " weights), fresh Adam lr " << lr << std::endl;
    } else if (phase == 1) {
      log << "phase 1: base frozen, training the head (" << model.trainable_size() << " weights), Adam lr " << lr
          << std::endl;
    }
    Adam adam(model.trainable_size(), lr);
    const bool continuing = c.resume && phase == from.phase;
    if (continuing && resumed.adam_t > 0) {
      if (resumed.adam_m.size() != adam.size())
        throw std::runtime_error(resumed.path + ": its optimizer state covers " + std::to_string(resumed.adam_m.size()) +
                                 " weights, this run trains " + std::to_string(adam.size()) +
                                 " (was --unfreeze-last/--unfreeze-from changed?)");
      adam.m() = resumed.adam_m;
      adam.v() = resumed.adam_v;
      adam.set_iterations(resumed.adam_t);
    }
    double phase_seconds = 0;
    for (int e = continuing ? from.epoch : 1; e <= epochs; ++e) {
      const bool first = continuing && e == from.epoch;
      const int first_step = first ? from.step : 0;
      const int global_epoch = (phase == 1 ? 0 : c.phase1_epochs) + e - 1;
      const auto start = std::chrono::steady_clock::now();
      bool stopped = false;
      auto after_step = [&](int steps_done, const LossResult& sums) {
        ++steps_this_run;
        const bool stop = c.max_steps > 0 && steps_this_run >= c.max_steps;
        if (checkpoints && (stop || (c.checkpoint_steps > 0 && steps_done % c.checkpoint_steps == 0))) {
          TrainPosition at{phase, e, steps_done, sums};
          checkpoint(&adam, at);
        }
        return stop;
      };
      StepTimes times;
      const int cached_node = phase == 1 ? cache_plan.phase1_node : cache_plan.phase2_node;
      std::unique_ptr<EpochFeed> feed;
      if (cached_node >= 0) {
        feed = std::make_unique<EpochFeed>(*caches.train, cached_node, c.batch_size, train_plan.order(global_epoch),
                                           first_step);
      } else {
        auto steps = train_plan.local_batches(global_epoch);
        steps.erase(steps.begin(), steps.begin() + std::min<std::size_t>(steps.size(), static_cast<std::size_t>(first_step)));
        feed = std::make_unique<EpochFeed>(train, std::move(steps), prefetch_config(c, c.augment, global_epoch));
      }
      const LossResult r = train_epoch(model, adam, *feed, train_plan, c, phase, first_step,
                                       first ? from.partial : LossResult{}, after_step, stopped,
                                       Comm::is_root() ? &log : nullptr, times);
      if (stopped) {
        log << "stopped after " << steps_this_run << " step(s) (--max-steps) in phase " << phase << " epoch " << e
            << (checkpoints ? "; continue with --resume" : "") << std::endl;
        return history;
      }
      EpochStats s;
      s.phase = phase;
      s.epoch = e;
      s.loss = r.loss_sum / r.count;
      s.accuracy = static_cast<double>(r.correct) / r.count;
      s.images_per_second = (r.count - (first ? from.partial.count : 0)) / times.total;
      s.data_wait_seconds = times.data;
      s.comm_seconds = times.comm;
      s.compute_seconds = times.total - times.data - times.comm;
      if (val) {
        LossResult v;
        if (cached_node >= 0) {
          EpochFeed cached_val(*caches.val, cached_node, c.batch_size, epoch_order(val->size(), false, 0, 0), 0);
          v = evaluate_feed(model, cached_val);
        } else {
          v = evaluate(model, *val, c.batch_size, c.image_size, c.preprocess, c.loader_threads);
        }
        s.val_loss = v.loss_sum / v.count;
        s.val_accuracy = static_cast<double>(v.correct) / v.count;
      }
      s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();  // with validation
      phase_seconds += s.seconds;
      log_epoch(log, s, val != nullptr);
      history.push_back(s);
      check_replicas(model, phase, e);
      if (on_epoch) on_epoch(s);
      // The next position: the next epoch of this phase (same optimizer), or the next phase (a
      // fresh one).
      if (e < epochs)
        checkpoint(&adam, TrainPosition{phase, e + 1, 0, {}});
      else
        checkpoint(nullptr, TrainPosition{phase + 1, 1, 0, {}});
    }
    if (epochs > 0) {
      std::ostringstream line;
      line << "phase " << phase << " took " << std::fixed << std::setprecision(1) << phase_seconds
           << "s (training and validation)";
      log << line.str() << std::endl;
    }
  }
  return history;
}

}  // namespace parafine
