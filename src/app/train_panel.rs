//! Train panel: start, stop and resume a training run on the current dataset (the worker runs
//! the trainer; this panel only sends requests and draws what comes back), with a progress bar,
//! ETA, and the charts that matter: training loss and reward per step, and held-out
//! masked-entity EM, recall EM and teacher-trace NLL per evaluation. Opening an existing run
//! folder redraws its charts from `metrics.jsonl` and `eval.jsonl`.

use super::worker::{Request, TrainRequest, Worker, run_device};
use crate::device::DeviceChoice;
use crate::model::precision::Precision;
use crate::eval::HeldOutEval;
use crate::train::config::PRESETS;
use crate::train::metrics::StepRecord;
use egui_plot::{Legend, Line, Plot, PlotPoints};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct TrainPanel {
    pub preset: String,
    /// Overrides of the preset's step counts.
    pub sft_steps: usize,
    pub grpo_steps: usize,
    pub running: bool,
    pub total: usize,
    pub started: Option<(Instant, usize)>,
    pub steps: Vec<StepRecord>,
    pub evals: Vec<HeldOutEval>,
    pub run_dir: Option<PathBuf>,
    pub note: Option<String>,
}

/// SFT + GRPO steps of a first look at `preset`: enough for the held-out charts to move, short
/// enough for a first session on 2 CPU cores (times measured in README, Training); the full
/// preset is one click away.
pub fn quick_look(preset: &str) -> (usize, usize) {
    match preset {
        // 3 s per step: many steps are cheap.
        "scratch-cpu" => (60, 2),
        // SmolLM2 costs ~22 s per SFT step (its student rollout included) and ~2 min per GRPO
        // step on 2 cores: half of tiny-cpu's SFT warm start, which already changes what the
        // memories keep (README, Training: masked EM 2 → 5/24, recall memories 17 → 20/38).
        _ => (20, 0),
    }
}

/// The precision of new runs on a GPU: f32, or mixed f16 (a run config's `precision`), whose
/// step keeps its activations in f16 (one 1,024-token SmolLM2-135M step: 3.62 → 3.19 GB on
/// lavapipe; README, Performance). Not offered on the CPU, whose kernels are f32.
fn precision_choice(ui: &mut egui::Ui, precision: &mut Precision) {
    ui.horizontal(|ui| {
        ui.label("Precision on a GPU");
        ui.selectable_value(precision, Precision::F32, "f32");
        ui.selectable_value(precision, Precision::MixedF16, "mixed f16")
            .on_hover_text("matmuls and each layer's inside in f16, weights and optimizer in f32 with loss scaling: less GPU memory per step. A run on the CPU (Auto without a GPU) computes in f32; a resumed run keeps its own precision.");
    });
}

/// What a quick look costs, for its button's hover text.
const QUICK_LOOK_TIME: &str = "tiny-cpu (SmolLM2-135M) takes about 10 minutes on 2 CPU cores with its two evaluations (estimated from its measured step time), scratch-cpu about 4";

impl Default for TrainPanel {
    fn default() -> Self {
        let preset = "tiny-cpu";
        let (sft_steps, grpo_steps) = quick_look(preset);
        TrainPanel { preset: preset.into(), sft_steps, grpo_steps, running: false, total: 0, started: None, steps: vec![], evals: vec![], run_dir: None, note: None }
    }
}

/// Where the run of `dataset` with `preset` lives.
pub fn run_dir_for(data_dir: &Path, dataset: &Path, preset: &str) -> PathBuf {
    let name = dataset.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "dataset".into());
    data_dir.join("runs").join(format!("{name}-{preset}"))
}

impl TrainPanel {
    /// Reads the history of an existing run folder (charts after a restart).
    pub fn open_history(&mut self, run: &Path) {
        let r = crate::train::run_dir::RunDir::new(run);
        self.steps = crate::train::metrics::read_records(&r.metrics()).unwrap_or_default();
        self.evals = std::fs::read_to_string(r.eval()).map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()).unwrap_or_default();
        self.run_dir = Some(run.to_path_buf());
    }

    /// The run the app shows: the one opened or started here, else `dataset`'s run folder for
    /// the chosen preset when one exists (after a restart, before the Train tab is opened).
    pub fn current_run(&self, data_dir: &Path, dataset: Option<&Path>) -> Option<PathBuf> {
        self.run_dir.clone().or_else(|| {
            let r = run_dir_for(data_dir, dataset?, &self.preset);
            r.join("config.ron").exists().then_some(r)
        })
    }

    /// `model`: the model loaded in the app, trained instead of the default one by presets that
    /// start from the default model.
    #[allow(clippy::too_many_arguments)]
    pub fn start(&mut self, worker: &Worker, dataset: &Path, data_dir: &Path, model: Option<&Path>, device: DeviceChoice, precision: Precision, resume: bool) {
        let out = run_dir_for(data_dir, dataset, &self.preset);
        if !resume {
            self.steps.clear();
            self.evals.clear();
        } else {
            self.open_history(&out);
        }
        self.running = true;
        self.note = None;
        self.started = None;
        self.run_dir = Some(out.clone());
        let (preset, sft_steps, grpo_steps) = (self.preset.clone(), self.sft_steps, self.grpo_steps);
        worker.send(Request::Train(TrainRequest { data: dataset.to_path_buf(), out, model: model.map(Path::to_path_buf), preset, sft_steps, grpo_steps, device, precision, resume }));
    }

    pub fn on_step(&mut self, record: StepRecord, total: usize) {
        self.total = total;
        let done = record.step as usize + 1;
        self.started.get_or_insert((Instant::now(), done));
        self.steps.retain(|r| r.step < record.step);
        self.steps.push(record);
    }

    pub fn on_eval(&mut self, e: HeldOutEval) {
        self.evals.retain(|x| x.step < e.step);
        self.evals.push(e);
    }

    pub fn finished(&mut self, note: String) {
        self.running = false;
        self.note = Some(note);
    }

    /// `precision`: the app's setting (kept across restarts), which this panel offers to change.
    #[allow(clippy::too_many_arguments)]
    pub fn ui(&mut self, ui: &mut egui::Ui, worker: &Worker, dataset: Option<&Path>, data_dir: &Path, model: Option<&Path>, device: DeviceChoice, precision: &mut Precision, busy: bool) {
        ui.heading("Train the memory agent");
        let Some(dataset) = dataset else {
            ui.label("Generate or open a dataset in the Exercises tab first: training reads its exercises.jsonl.");
            return;
        };
        ui.label(format!("Dataset: {}", dataset.display()));
        ui.horizontal(|ui| {
            ui.label("Preset");
            egui::ComboBox::from_id_salt("train-preset").selected_text(&self.preset).show_ui(ui, |ui| {
                for p in PRESETS {
                    if ui.selectable_value(&mut self.preset, p.to_string(), *p).changed()
                        && let Ok(c) = crate::train::TrainConfig::preset(p)
                    {
                        (self.sft_steps, self.grpo_steps) = (c.sft.steps, c.grpo_steps);
                    }
                }
            });
            ui.label("SFT steps");
            ui.add(egui::DragValue::new(&mut self.sft_steps).range(0..=100_000));
            ui.label("GRPO steps");
            ui.add(egui::DragValue::new(&mut self.grpo_steps).range(0..=100_000));
            let (sft, grpo) = quick_look(&self.preset);
            if ui.button("Quick look").on_hover_text(format!("{sft} SFT + {grpo} GRPO steps: {}", QUICK_LOOK_TIME)).clicked() {
                (self.sft_steps, self.grpo_steps) = (sft, grpo);
            }
            if ui.button("Full preset").on_hover_text("the preset's own length (README, Training, gives measured times)").clicked()
                && let Ok(c) = crate::train::TrainConfig::preset(&self.preset)
            {
                (self.sft_steps, self.grpo_steps) = (c.sft.steps, c.grpo_steps);
            }
        });
        // Not offered for a run on the CPU: chosen, or the preset's own device under Auto.
        let preset_device = crate::train::TrainConfig::preset(&self.preset).map(|c| c.device).unwrap_or(DeviceChoice::Auto);
        if run_device(preset_device, device) != DeviceChoice::Cpu {
            precision_choice(ui, precision);
        }
        let precision = *precision;
        let out = run_dir_for(data_dir, dataset, &self.preset);
        let exists = out.join("config.ron").exists();
        // After a restart, the charts of this dataset's run come back on their own.
        if exists && self.run_dir.is_none() && !self.running {
            self.open_history(&out);
        }
        ui.horizontal(|ui| {
            if self.running {
                if ui.button("Stop (checkpoint and stop)").clicked() {
                    worker.cancel();
                }
            } else {
                let label = if exists { "Start over" } else { "Start training" };
                if ui.add_enabled(!busy, egui::Button::new(label)).clicked() {
                    if exists {
                        let _ = std::fs::remove_dir_all(&out);
                    }
                    self.start(worker, dataset, data_dir, model, device, precision, false);
                }
                if exists && ui.add_enabled(!busy, egui::Button::new("Resume")).clicked() {
                    self.start(worker, dataset, data_dir, model, device, precision, true);
                }
                if exists && self.run_dir.as_deref() != Some(out.as_path()) && ui.button("Show this run").clicked() {
                    self.open_history(&out);
                }
            }
            ui.weak(format!("run folder: {}", out.display()));
        });
        if let Some(n) = &self.note {
            ui.label(n);
        }
        self.progress(ui);
        self.charts(ui);
    }

    fn progress(&self, ui: &mut egui::Ui) {
        let Some(last) = self.steps.last() else { return };
        let done = last.step as usize + 1;
        let total = self.total.max(done);
        let eta = match self.started {
            Some((t, first)) if self.running && done > first => {
                let per = t.elapsed().as_secs_f64() / (done - first) as f64;
                format!(" — {:.1} s/step, about {:.0} min left", per, per * (total - done) as f64 / 60.0)
            }
            _ => String::new(),
        };
        let phase = last.phase.as_deref().unwrap_or("?");
        ui.add(egui::ProgressBar::new(done as f32 / total as f32).text(format!("step {done}/{total} [{phase}]{eta}")));
        if let Some(s) = &last.skipped {
            ui.weak(format!("last step skipped: {s}"));
        }
    }

    fn charts(&self, ui: &mut egui::Ui) {
        let series = |f: &dyn Fn(&StepRecord) -> Option<f64>| -> Vec<[f64; 2]> { self.steps.iter().filter_map(|r| f(r).map(|y| [r.step as f64 + 1.0, y])).collect() };
        let evals = |f: &dyn Fn(&HeldOutEval) -> Option<f64>| -> Vec<[f64; 2]> { self.evals.iter().filter_map(|e| f(e).map(|y| [e.step as f64, y])).collect() };
        let height = (ui.available_height() / 2.0 - 20.0).max(120.0);
        ui.columns(2, |cols| {
            cols[0].label("Training (per step)");
            Plot::new("train-steps").height(height).legend(Legend::default()).x_axis_label("step").show(&mut cols[0], |p| {
                p.line(Line::new("loss", PlotPoints::from(series(&|r| r.loss.map(f64::from)))));
                p.line(Line::new("reward", PlotPoints::from(series(&|r| (r.phase.as_deref() == Some("grpo")).then(|| r.reward_blended.unwrap_or(r.reward_end_to_end).mean as f64)))));
                p.line(Line::new("recall (train)", PlotPoints::from(series(&|r| r.recall.map(f64::from)))));
            });
            cols[1].label("Held-out documents (greedy)");
            Plot::new("train-evals").height(height).legend(Legend::default()).x_axis_label("step").include_y(0.0).show(&mut cols[1], |p| {
                p.line(Line::new("masked-entity EM", PlotPoints::from(evals(&|e| Some(e.masked.exact_match as f64)))));
                p.line(Line::new("recall EM", PlotPoints::from(evals(&|e| Some(e.recall.exact_match as f64)))));
                p.line(Line::new("memory holds recall answer", PlotPoints::from(evals(&|e| e.memory_holds.map(f64::from)))));
                p.line(Line::new("final memory holds masked answer", PlotPoints::from(evals(&|e| e.masked_memory_holds.map(f64::from)))));
                p.line(Line::new("masked EM from the teacher's memory", PlotPoints::from(evals(&|e| e.masked_from_teacher_memory.map(|s| s.exact_match as f64)))));
                p.line(Line::new("recall F1", PlotPoints::from(evals(&|e| Some(e.recall.f1 as f64)))));
                p.line(Line::new("teacher NLL / 10", PlotPoints::from(evals(&|e| e.reference_nll.map(|v| v as f64 / 10.0)))));
            });
        });
    }
}
