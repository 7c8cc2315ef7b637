// `parafine train`'s Keras callback options (see callback_options.hpp).
#include "cli/callback_options.hpp"

#include <stdexcept>

#include "cli/cli.hpp"
#include "parafine/io/model_files.hpp"
#include "parafine/train/train_config.hpp"

namespace po = boost::program_options;

namespace parafine {

void add_callback_options(CommandOptions& opts, CallbackOptionTexts& t) {
  auto add = opts.add();
  add("monitor", po::value(&t.monitor)->default_value("val_loss"),
      "what --save-best, --early-stopping and --reduce-lr-on-plateau watch: val_loss | "
      "val_accuracy | loss | accuracy (minimised for losses, maximised for accuracies, as "
      "Keras's mode 'auto'; val_* needs validation data)");
  add("save-best", po::value(&t.save_best),
      "ModelCheckpoint(FILE, save_best_only=True): rank 0 writes the model (any --save format) "
      "whenever the monitored value improves; the best carries over from phase 1 to phase 2, so "
      "FILE holds the best model of the whole run");
  add("early-stopping", po::value(&t.early_stopping),
      "EarlyStopping(patience=PATIENCE): end a phase when the monitored value has not improved "
      "for PATIENCE epochs (never at its first epoch); reset for each phase, and phase 2 "
      "still runs after phase 1 stopped");
  add("min-delta", po::value(&t.min_delta)->default_value(0.0),
      "EarlyStopping's min_delta: a smaller change is no improvement");
  add("restore-best", po::bool_switch(&t.restore_best),
      "EarlyStopping's restore_best_weights: at the end of each phase (stopped or not) set all "
      "weights, BN statistics too, back to the phase's best epoch");
  add("reduce-lr-on-plateau", po::value(&t.reduce_lr),
      "FACTOR,PATIENCE[,MIN_LR]: ReduceLROnPlateau(factor, patience, min_lr; min_delta 1e-4, "
      "cooldown 0), reset for each phase; needs --lr-schedule constant");
  add("lr-schedule", po::value(&t.lr_schedule)->default_value("constant"),
      "each phase's rate per step s (0 at the phase's start): constant | cosine = "
      "CosineDecay(lr, decay_steps = the phase's steps) | exponential,RATE = "
      "ExponentialDecay(lr, decay_steps = steps per epoch, decay_rate = RATE): lr*RATE^(s/steps "
      "per epoch)");
  add("warmup-epochs", po::value(&t.warmup_epochs)->default_value(0),
      "K: the first K epochs of each phase ramp the rate linearly per step, (s+1)/(K*steps per "
      "epoch) times the schedule's rate (Horovod's warmup, without its dependence on the rank "
      "count)");
  opts.bound("early-stopping", 0, kMaxEpochs);
  opts.bound("warmup-epochs", 0, kMaxEpochs);
}

void parse_callback_options(const CallbackOptionTexts& t, bool has_validation, CallbackOptions& o) {
  try {
    o.monitor = parse_monitor(t.monitor);
    o.save_best = !t.save_best.empty();
    if (o.save_best) model_format_of(t.save_best, "--save-best");
    o.early_stopping_patience = t.early_stopping;
    o.min_delta = t.min_delta;
    if (t.min_delta != 0 && t.early_stopping < 0)
      throw UsageError(
          "--min-delta is EarlyStopping's min_delta: give --early-stopping too "
          "(--reduce-lr-on-plateau uses Keras's default min_delta, 1e-4)");
    o.restore_best = t.restore_best;
    if (!t.reduce_lr.empty()) parse_reduce_lr(t.reduce_lr, o);
    parse_lr_schedule(t.lr_schedule, o);
    o.warmup_epochs = t.warmup_epochs;
    validate(o);
  } catch (const UsageError&) {
    throw;
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (o.any_monitor_callback() && monitor_needs_validation(o.monitor) && !has_validation)
    throw UsageError(std::string("--monitor ") + monitor_name(o.monitor) +
                     " needs validation data (--val); without it the callbacks would never act: "
                     "give --val, or --monitor loss | accuracy");
}

}  // namespace parafine
