// Training options: parsing, validation, the prefetcher's view (see train_config.hpp).
#include "parafine/train/train_config.hpp"

#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <stdexcept>

#include "parafine/model/backbone.hpp"
#include "parafine/train/class_weights.hpp"

namespace parafine {

namespace {

void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

}  // namespace

BnMode parse_bn_mode(const std::string& name) {
  if (name == "sync") return BnMode::kSync;
  if (name == "local") return BnMode::kLocal;
  if (name == "frozen") return BnMode::kFrozen;
  throw std::invalid_argument("--bn-mode must be sync, local or frozen, got '" + name + "'");
}

void validate(const TrainConfig& c) {
  const auto n = [](auto v) { return std::to_string(v); };
  require(c.batch_size >= 1 && c.batch_size <= kMaxBatchSize,
          "--batch-size must be between 1 and " + n(kMaxBatchSize) + ", got " + n(c.batch_size));
  require(c.phase1_epochs >= 0 && c.phase1_epochs <= kMaxEpochs,
          "--phase1-epochs must be between 0 and " + n(kMaxEpochs) + ", got " + n(c.phase1_epochs));
  require(c.phase2_epochs >= 0 && c.phase2_epochs <= kMaxEpochs,
          "--phase2-epochs must be between 0 and " + n(kMaxEpochs) + ", got " + n(c.phase2_epochs));
  require(std::isfinite(c.phase1_lr) && c.phase1_lr >= 0,
          "--phase1-lr must be a finite number >= 0");
  require(std::isfinite(c.phase2_lr) && c.phase2_lr >= 0,
          "--phase2-lr must be a finite number >= 0");
  if (c.model_from_file) {
    require(c.unfreeze_last >= 0 && c.unfreeze_last <= c.base_layers,
            "--unfreeze-last must be between 0 and " + n(c.base_layers) +
                " (the --init model's base layers), got " + n(c.unfreeze_last));
    require(c.image_size >= 1 && c.image_size <= kMaxImageSize,
            "--image-size must be between 1 and " + n(kMaxImageSize) + ", got " + n(c.image_size));
  } else {
    const BackboneInfo& backbone = backbone_info(c.backbone);
    require(c.unfreeze_last >= 0 && c.unfreeze_last <= backbone.base_layers,
            "--unfreeze-last must be between 0 and " + n(backbone.base_layers) + " (" +
                backbone.name + "'s base layers), got " + n(c.unfreeze_last));
    check_image_size(c.image_size, c.backbone);
    check_alpha(c.alpha, c.backbone);
  }
  check_augment_size(c.augment, c.image_size);  // crop:D with D >= the input size
  require(c.loader_threads >= 1, "loader threads must be at least 1");
  if (!(c.bucket_mb >= kMinBucketMb && c.bucket_mb <= kMaxBucketMb)) {
    std::ostringstream m;
    m << "--bucket-mb must be between " << kMinBucketMb << " and " << kMaxBucketMb << ", got "
      << c.bucket_mb << "; allowed: " << kMinBucketMb << ".." << kMaxBucketMb
      << " MiB (a bucket holds at least one float, 4 bytes)";
    throw std::invalid_argument(m.str());
  }
  require(c.calibrate_bn_samples >= 0, "calibration sample count must be >= 0");
  require(std::isfinite(c.dropout) && c.dropout >= 0 && c.dropout < 1,
          "--dropout must be at least 0 and below 1 (Keras's Dropout rate), got " +
              std::to_string(c.dropout));
  validate(c.callbacks);
}

std::string trajectory_options(const TrainConfig& c) {
  const auto exact = [](double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return std::string(buf);
  };
  const char* bn = c.bn_mode == BnMode::kSync    ? "sync"
                   : c.bn_mode == BnMode::kLocal ? "local"
                                                 : "frozen";
  std::ostringstream o;
  // ResNet50 (the only backbone before there were others) writes no line, so its older
  // checkpoints still compare equal.
  if (c.backbone != Backbone::kResNet50)
    o << "--backbone " << backbone_info(c.backbone).name << "\n";
  if (c.alpha != 1.0f) o << "--alpha " << alpha_text(c.alpha) << "\n";
  if (c.validation_split > 0) o << "--validation-split " << exact(c.validation_split) << "\n";
  o << "--batch-size " << c.batch_size << "\n--seed " << c.seed << "\n--shuffle "
    << (c.shuffle ? "true" : "false") << "\n--image-size " << c.image_size << "\n--preprocess "
    << preprocess_name(c.preprocess) << "\n--augment " << augment_name(c.augment) << "\n--bn-mode "
    << bn << "\n--phase1-epochs " << c.phase1_epochs << "\n--phase1-lr " << exact(c.phase1_lr)
    << "\n--phase2-lr " << exact(c.phase2_lr) << "\n"
    << (c.unfreeze_from.empty() ? "--unfreeze-last " + std::to_string(c.unfreeze_last)
                                : "--unfreeze-from " + c.unfreeze_from)
    << "\n";
  if (!c.class_weights.empty()) o << class_weights_option(c.class_weights) << "\n";
  if (c.dropout > 0) o << "--dropout " << exact(c.dropout) << "\n";
  const CallbackOptions& cb = c.callbacks;  // the callbacks that change the trajectory
  if (cb.early_stopping_patience >= 0 || cb.reduce_lr)
    o << "--monitor " << monitor_name(cb.monitor) << "\n";
  if (cb.early_stopping_patience >= 0)
    o << "--early-stopping " << cb.early_stopping_patience << "\n--min-delta "
      << exact(cb.min_delta) << "\n--restore-best " << (cb.restore_best ? "true" : "false") << "\n";
  if (cb.reduce_lr)
    o << "--reduce-lr-on-plateau " << exact(cb.reduce_factor) << "," << cb.reduce_patience << ","
      << exact(cb.reduce_min_lr) << "\n";
  if (cb.schedule != ScheduleKind::kConstant)
    o << "--lr-schedule "
      << (cb.schedule == ScheduleKind::kCosine ? "cosine" : "exponential," + exact(cb.decay_rate))
      << "\n";
  if (cb.schedule == ScheduleKind::kCosine)  // decays over the phase's steps
    o << "--phase2-epochs " << c.phase2_epochs << "\n";
  if (cb.warmup_epochs > 0) o << "--warmup-epochs " << cb.warmup_epochs << "\n";
  return o.str();
}

std::string trajectory_differences(const std::string& checkpoint, const std::string& now) {
  const auto parse = [](const std::string& text) {
    std::map<std::string, std::string> m;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      const auto space = line.find(' ');
      if (space != std::string::npos) m[line.substr(0, space)] = line.substr(space + 1);
    }
    return m;
  };
  const auto was = parse(checkpoint), is = parse(now);
  std::string out;
  const auto note = [&](const std::string& key, const std::string& a, const std::string& b) {
    out += (out.empty() ? "" : "; ") + key + " " + a + " in the checkpoint, " + b + " now";
  };
  for (const auto& [key, value] : was) {
    const auto it = is.find(key);
    if (it == is.end())
      note(key, value, "not given");
    else if (it->second != value)
      note(key, value, it->second);
  }
  for (const auto& [key, value] : is)
    if (!was.count(key)) note(key, "not given", value);
  return out;
}

PrefetchConfig prefetch_config(const TrainConfig& c, const AugmentSpec& augment, int epoch) {
  PrefetchConfig p;
  p.image_size = c.image_size;
  p.preprocess = c.preprocess;
  p.augment = augment;
  p.seed = c.seed;
  p.epoch = epoch;
  p.threads = c.loader_threads;
  return p;
}

}  // namespace parafine
