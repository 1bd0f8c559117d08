//! Evaluate panel: the untrained model (RUN/initial) against the trained one (RUN/final) on the
//! same held-out exercises. The worker runs `eval::report::compare`, which also writes
//! report.json, scores.csv, records and PNG charts into RUN/eval (the panel's export); the
//! panel draws recall by distance and per-objective bars with 95 % bootstrap error bars.

use super::dialogs::{Dialogs, Purpose};
use super::worker::{Request, Worker};
use crate::device::DeviceChoice;
use crate::eval::report::{CompareOptions, CompareReport, ModelReport};
use crate::eval::stats::Estimate;
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints};
use std::path::{Path, PathBuf};

pub struct EvalPanel {
    /// Held-out masked exercises to use (their recall probes come along).
    pub limit: usize,
    pub max_distance: usize,
    pub running: bool,
    pub report: Option<CompareReport>,
    /// How the last comparison ended when it gave no report ("evaluation stopped").
    pub note: Option<String>,
    /// Run folder the shown report belongs to.
    pub shown: Option<PathBuf>,
}

impl Default for EvalPanel {
    fn default() -> Self {
        EvalPanel { limit: 16, max_distance: 3, running: false, report: None, note: None, shown: None }
    }
}

/// Where a run's comparison is written.
pub fn report_dir(run: &Path) -> PathBuf {
    run.join("eval")
}

fn ci(e: &Estimate) -> String {
    format!("{e} (n={})", e.n)
}

impl EvalPanel {
    pub fn on_report(&mut self, report: CompareReport) {
        self.running = false;
        self.report = Some(report);
    }

    /// A report written earlier for `run` (after a restart).
    fn load(&mut self, run: &Path) {
        self.shown = Some(run.to_path_buf());
        self.report = std::fs::read_to_string(report_dir(run).join("report.json")).ok().and_then(|t| serde_json::from_str(&t).ok());
    }

    #[allow(clippy::too_many_arguments)]
    pub fn ui(&mut self, ui: &mut egui::Ui, worker: &Worker, dialogs: &mut Dialogs, run: Option<&Path>, dataset: Option<&Path>, device: DeviceChoice, busy: bool) {
        ui.heading("Evaluate: untrained vs trained");
        let (Some(run), Some(dataset)) = (run, dataset) else {
            ui.label("Train a model in the Train tab first: this tab compares the run's untrained start with its trained result on held-out documents.");
            return;
        };
        if self.shown.as_deref() != Some(run) && !self.running {
            self.load(run);
        }
        let dir = crate::train::run_dir::RunDir::new(run);
        let trained = dir.final_model();
        ui.label(format!("Baseline: {}    Trained: {}", dir.initial().display(), trained.display()));
        ui.horizontal(|ui| {
            ui.label("Held-out exercises");
            ui.add(egui::DragValue::new(&mut self.limit).range(1..=10_000));
            ui.label("Recall distances up to");
            ui.add(egui::DragValue::new(&mut self.max_distance).range(0..=32));
            let ready = trained.exists() && !busy && !self.running;
            if ui.add_enabled(ready, egui::Button::new("Compare")).on_disabled_hover_text("needs a finished run (RUN/final)").clicked() {
                // The run's own budgets and teacher (the one its SFT imitated).
                let cfg = crate::train::Trainer::saved_config(run).unwrap_or_else(|_| crate::train::TrainConfig::tiny_cpu());
                let options = CompareOptions::from_config(&cfg, self.limit, self.max_distance);
                self.running = true;
                self.note = None;
                worker.send(Request::Evaluate { baseline: dir.initial(), trained: trained.clone(), data: dataset.to_path_buf(), out: report_dir(run), options, device });
            }
            if self.running {
                ui.spinner();
                ui.label("evaluating both models…");
                if ui.button("Stop").clicked() {
                    worker.cancel();
                }
            } else if let Some(n) = &self.note {
                ui.weak(n);
            }
        });
        let Some(report) = &self.report else {
            ui.weak("No comparison yet for this run.");
            return;
        };
        ui.horizontal_wrapped(|ui| {
            ui.weak(format!("Scorer: {}. Files (report.json, scores.csv, PNG charts): {}", report.scorer, report_dir(run).display()));
            if ui.add_enabled(!dialogs.open(), egui::Button::new("Export…")).on_hover_text("copy the report's JSON, CSV and PNG files to a folder").clicked() {
                dialogs.show(Purpose::ExportReport, ui.ctx());
            }
        });
        egui::Grid::new("eval-numbers").striped(true).show(ui, |ui| {
            ui.strong("");
            ui.strong("masked-entity EM (obj. 1)");
            ui.strong("recall EM (obj. 2)");
            ui.strong("obj. 1 from the teacher's memory").on_hover_text("the final answer asked from the memory the training's teacher writes (where it holds the answer's name and a [MASK]): the answer turn's skill without the memory writer's");
            ui.end_row();
            for (role, m) in [("baseline", Some(&report.baseline)), ("trained", report.trained.as_ref())] {
                if let Some(m) = m {
                    ui.label(role);
                    ui.label(ci(&m.masked.exact_match));
                    ui.label(ci(&m.recall.exact_match));
                    ui.label(ci(&m.masked_from_teacher_memory.exact_match));
                    ui.end_row();
                }
            }
            if let Some(g) = &report.gains {
                ui.label("gain (paired)");
                ui.label(ci(&g.masked_exact_match));
                ui.label(ci(&g.recall_exact_match));
                ui.label(ci(&g.masked_from_teacher_memory_exact_match));
                ui.end_row();
            }
        });
        let models: Vec<(&str, &ModelReport)> = [("baseline", Some(&report.baseline)), ("trained", report.trained.as_ref())].into_iter().filter_map(|(r, m)| m.map(|m| (r, m))).collect();
        let height = (ui.available_height() - 30.0).max(140.0);
        ui.columns(3, |cols| {
            cols[0].label("Recall by distance (memory updates since the fact was read), 95% CI");
            Plot::new("eval-distance").height(height).legend(Legend::default()).include_y(0.0).include_y(1.0).x_axis_label("distance").show(&mut cols[0], |p| {
                for (role, m) in &models {
                    let pts: Vec<[f64; 2]> = m.recall_by_distance.iter().map(|(d, s)| [*d as f64, s.exact_match.mean as f64]).collect();
                    p.line(Line::new(*role, PlotPoints::from(pts)));
                    for (d, s) in &m.recall_by_distance {
                        let x = *d as f64;
                        p.line(Line::new(*role, PlotPoints::from(vec![[x, s.exact_match.low as f64], [x, s.exact_match.high as f64]])));
                    }
                }
            });
            cols[1].label("Exact match per objective, 95% CI");
            Plot::new("eval-objectives").height(height).legend(Legend::default()).include_y(0.0).include_y(1.0).show(&mut cols[1], |p| {
                for (i, (role, m)) in models.iter().enumerate() {
                    let x0 = i as f64 * 0.4;
                    let groups = [("masked", &m.masked.exact_match), ("recall", &m.recall.exact_match), ("masked from the teacher's memory", &m.masked_from_teacher_memory.exact_match)];
                    let at = |g: usize| 2.0 * g as f64 + x0;
                    p.bar_chart(BarChart::new(*role, groups.iter().enumerate().map(|(g, (name, e))| Bar::new(at(g), e.mean as f64).width(0.35).name(*name)).collect()));
                    for (x, e) in groups.iter().enumerate().map(|(g, (_, e))| (at(g), *e)) {
                        p.line(Line::new(*role, PlotPoints::from(vec![[x, e.low as f64], [x, e.high as f64]])));
                    }
                }
            });
            entity_types(&mut cols[2], &models, height - 18.0); // one text row less: the kind names
        });
    }
}

/// Exact match (both objectives) per entity type of the answer, one bar per model, 95 % CI.
fn entity_types(ui: &mut egui::Ui, models: &[(&str, &ModelReport)], height: f32) {
    let kinds: Vec<&String> = models.iter().flat_map(|(_, m)| m.by_entity_type.keys()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    ui.label("Exact match by entity type, 95% CI");
    // Whole names do not fit under narrow bars: the axis shows 4-letter marks, the full names
    // are listed here and on hover.
    ui.weak(kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" · "));
    let names = kinds.iter().map(|k| k.chars().take(4).collect::<String>()).collect::<Vec<_>>();
    Plot::new("eval-entity-types")
        .height(height)
        .legend(Legend::default())
        .include_y(0.0)
        .include_y(1.0)
        // Every kind in view even when all bars are zero.
        .include_x(-0.6)
        .include_x(kinds.len() as f64 - 0.4)
        .x_grid_spacer(egui_plot::uniform_grid_spacer(|_| [1.0, 1.0, 1.0]))
        // Default hints hide every x label closer than 60 px; a bar group is about 50 px wide.
        .custom_x_axes(vec![egui_plot::AxisHints::new_x().label_spacing(24.0..=32.0).formatter(move |mark, _| {
            let i = mark.value.round();
            if (mark.value - i).abs() < 1e-6 && i >= 0.0 { names.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
        })])
        .show(ui, |p| {
            for (j, (role, m)) in models.iter().enumerate() {
                let offset = (j as f64 - 0.5) * 0.4;
                let mut bars = vec![];
                for (i, kind) in kinds.iter().enumerate() {
                    let Some(s) = m.by_entity_type.get(*kind) else { continue };
                    let x = i as f64 + offset;
                    bars.push(Bar::new(x, s.exact_match.mean as f64).width(0.35).name(kind.as_str()));
                    p.line(Line::new(*role, PlotPoints::from(vec![[x, s.exact_match.low as f64], [x, s.exact_match.high as f64]])));
                }
                p.bar_chart(BarChart::new(*role, bars));
            }
        });
}
