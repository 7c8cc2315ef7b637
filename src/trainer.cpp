// Single-process two-phase training loop (see trainer.hpp).
#include "parafine/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <stdexcept>

#include "parafine/adam.hpp"
#include "parafine/initializers.hpp"
#include "parafine/layers/dense.hpp"
#include "parafine/resnet50.hpp"

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

}  // namespace

void validate(const TrainConfig& c) {
  require(c.batch_size >= 1, "--batch-size must be at least 1, got " + std::to_string(c.batch_size));
  require(c.phase1_epochs >= 0, "--phase1-epochs must be >= 0, got " + std::to_string(c.phase1_epochs));
  require(c.phase2_epochs >= 0, "--phase2-epochs must be >= 0, got " + std::to_string(c.phase2_epochs));
  require(std::isfinite(c.phase1_lr) && c.phase1_lr >= 0, "--phase1-lr must be a finite number >= 0");
  require(std::isfinite(c.phase2_lr) && c.phase2_lr >= 0, "--phase2-lr must be a finite number >= 0");
  require(c.unfreeze_last >= 0 && c.unfreeze_last <= kResNet50BaseLayers,
          "--unfreeze-last must be between 0 and 175, got " + std::to_string(c.unfreeze_last));
  require(c.calibrate_bn_samples >= 0, "calibration sample count must be >= 0");
}

std::vector<int> epoch_order(int samples, bool shuffle, std::uint64_t seed, int epoch_index) {
  std::vector<int> order(static_cast<size_t>(samples));
  for (int i = 0; i < samples; ++i) order[static_cast<size_t>(i)] = i;
  if (!shuffle) return order;
  SplitMix64 rng(hash_string("epoch" + std::to_string(epoch_index), seed));
  for (int i = samples - 1; i > 0; --i) {  // Fisher-Yates
    const int j = static_cast<int>(rng.next() % static_cast<std::uint64_t>(i + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

void gather_batch(const Dataset& data, const std::vector<int>& order, int begin, int end,
                  Tensor& images, std::vector<int>& labels) {
  Shape s = data.images.shape();
  const std::size_t per = s.numel() / static_cast<std::size_t>(s[0]);
  s.dims[0] = end - begin;
  images.resize(s);
  labels.resize(static_cast<size_t>(end - begin));
  for (int i = begin; i < end; ++i) {
    const int src = order[static_cast<size_t>(i)];
    std::memcpy(images.data() + (i - begin) * per, data.images.data() + src * per, per * sizeof(float));
    labels[static_cast<size_t>(i - begin)] = data.labels[static_cast<size_t>(src)];
  }
}

LossResult evaluate(Model& model, const Dataset& data, int batch_size) {
  LossResult total;
  const std::vector<int> order = epoch_order(data.size(), false, 0, 0);
  Tensor images;
  std::vector<int> labels;
  for (int b = 0; b < data.size(); b += batch_size) {
    gather_batch(data, order, b, std::min(data.size(), b + batch_size), images, labels);
    model.forward(images, false);
    const LossResult r = softmax_cross_entropy(logits_of(model), labels, 1.0, nullptr);
    total.loss_sum += r.loss_sum;
    total.correct += r.correct;
    total.count += r.count;
  }
  return total;
}

namespace {

EpochStats train_epoch(Model& model, Adam& adam, const Dataset& train, const Dataset& val,
                       const TrainConfig& c, int phase, int epoch, int global_epoch,
                       std::ostream& log) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int> order = epoch_order(train.size(), c.shuffle, c.seed, global_epoch);
  Tensor images, dlogits;
  std::vector<int> labels;
  LossResult sum;
  for (int b = 0; b < train.size(); b += c.batch_size) {
    const int e = std::min(train.size(), b + c.batch_size);
    gather_batch(train, order, b, e, images, labels);
    model.forward(images, true);
    const LossResult r = softmax_cross_entropy(logits_of(model), labels, e - b, &dlogits);
    if (!std::isfinite(r.loss_sum))
      throw std::runtime_error("phase " + std::to_string(phase) + " epoch " + std::to_string(epoch) +
                               ": the loss became " + std::to_string(r.loss_sum) + " at step " +
                               std::to_string(b / c.batch_size + 1));
    model.backward(dlogits);
    adam.step(model.params().data(), model.grads().data());
    sum.loss_sum += r.loss_sum;
    sum.correct += r.correct;
    sum.count += r.count;
  }
  EpochStats s;
  s.phase = phase;
  s.epoch = epoch;
  s.loss = sum.loss_sum / sum.count;
  s.accuracy = static_cast<double>(sum.correct) / sum.count;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  s.images_per_second = train.size() / s.seconds;
  if (val.size() > 0) {
    const LossResult v = evaluate(model, val, c.batch_size);
    s.val_loss = v.loss_sum / v.count;
    s.val_accuracy = static_cast<double>(v.correct) / v.count;
  }
  const std::ios_base::fmtflags flags = log.flags();
  const std::streamsize precision = log.precision();
  log << "phase " << phase << " epoch " << epoch << ": loss " << std::fixed << std::setprecision(4)
      << s.loss << " - accuracy " << s.accuracy << " - val_loss " << s.val_loss
      << " - val_accuracy " << s.val_accuracy << " - " << std::setprecision(1) << s.seconds << "s ("
      << s.images_per_second << " img/s)" << std::endl;
  log.flags(flags);
  log.precision(precision);
  return s;
}

}  // namespace

std::vector<EpochStats> run_two_phase(Model& model, const Dataset& train, const Dataset& val,
                                      const TrainConfig& c, std::ostream& log) {
  validate(c);
  if (train.size() == 0) throw std::invalid_argument("the training set is empty");
  std::vector<EpochStats> history;
  freeze_base(model);
  if (c.calibrate_bn_samples > 0) {
    Tensor images;
    std::vector<int> labels;
    const int n = std::min(train.size(), c.calibrate_bn_samples);
    gather_batch(train, epoch_order(train.size(), true, c.seed, -1), 0, n, images, labels);
    model.calibrate_batch_norm(images);
    log << "randomly initialised base: frozen BatchNormalization statistics calibrated on " << n
        << " training images" << std::endl;
  }
  int global_epoch = 0;
  {
    Adam adam(model.trainable_size(), c.phase1_lr);
    log << "phase 1: base frozen, training the head (" << model.trainable_size()
        << " weights), Adam lr " << c.phase1_lr << std::endl;
    for (int e = 1; e <= c.phase1_epochs; ++e)
      history.push_back(train_epoch(model, adam, train, val, c, 1, e, global_epoch++, log));
  }
  if (c.phase2_epochs > 0) {
    unfreeze_last_base_layers(model, c.unfreeze_last);
    Adam adam(model.trainable_size(), c.phase2_lr);
    log << "phase 2: last " << c.unfreeze_last << " base layers unfrozen (from "
        << model.layer(model.first_trainable_node()).name() << ", " << model.trainable_size()
        << " weights), fresh Adam lr " << c.phase2_lr << std::endl;
    for (int e = 1; e <= c.phase2_epochs; ++e)
      history.push_back(train_epoch(model, adam, train, val, c, 2, e, global_epoch++, log));
  }
  return history;
}

}  // namespace parafine
