//! Memory inspector: pick an exercise and step through its rollout — the chunk on one side, the
//! memory written after it on the other, what each update added and dropped, and every probed
//! entity followed through the memories (picked up, kept, lost); then the final answer and the
//! recall questions with their scores. The reading runs on the worker (greedy, cancellable),
//! with the loaded model or the current run's untrained start or trained result.

use super::memory_view::Reading;
use super::worker::{DatasetView, Request, Worker};
use crate::device::DeviceChoice;
use crate::eval::inspect::Inspection;
use crate::exercises::dataset::{Exercise, HELD_OUT, MASKED};
use crate::train::TrainConfig;
use egui::RichText;
use std::path::{Path, PathBuf};

/// Which model reads the exercise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    Loaded,
    Untrained,
    Trained,
}

pub struct InspectorPanel {
    pub reader: Reader,
    pub held_out_only: bool,
    /// Index into the dataset's exercises (an objective-1 one).
    pub selected: Option<usize>,
    pub memory_tokens: usize,
    pub answer_tokens: usize,
    pub max_distance: usize,
    pub reading: Reading,
    pub result: Option<Inspection>,
}

impl Default for InspectorPanel {
    fn default() -> Self {
        // The app's default run (tiny-cpu) reads and answers with these budgets.
        let budgets = TrainConfig::tiny_cpu().agent;
        InspectorPanel {
            reader: Reader::Loaded,
            held_out_only: true,
            selected: None,
            memory_tokens: budgets.memory_tokens,
            answer_tokens: budgets.answer_tokens,
            max_distance: 3,
            reading: Reading::default(),
            result: None,
        }
    }
}

impl InspectorPanel {
    pub fn on_result(&mut self, r: Inspection) {
        self.reading.finish(0, None);
        self.result = Some(r);
    }

    /// Reads the selected exercise with the chosen model.
    pub fn start(&mut self, worker: &Worker, view: &DatasetView, run: Option<&Path>, device: DeviceChoice) {
        self.selected = self.selected.or_else(|| self.candidates(view).first().copied());
        let Some(exercise) = self.selected.and_then(|i| view.exercises.get(i)) else { return };
        let probes: Vec<Exercise> = view.probes_of(&exercise.id).cloned().collect();
        let model = self.model_path(run);
        self.reading.begin(exercise.chunks.len() + 1);
        self.result = None;
        let (memory_tokens, answer_tokens, max_distance) = (self.memory_tokens, self.answer_tokens, self.max_distance);
        worker.send(Request::Inspect { model, exercise: Box::new(exercise.clone()), probes, memory_tokens, answer_tokens, max_distance, device });
    }

    /// The objective-1 exercises offered (held-out ones only unless unticked), in file order.
    fn candidates(&self, view: &DatasetView) -> Vec<usize> {
        (0..view.exercises.len()).filter(|&i| view.exercises[i].objective == MASKED && (!self.held_out_only || view.exercises[i].split == HELD_OUT)).collect()
    }

    fn model_path(&self, run: Option<&Path>) -> Option<PathBuf> {
        let dir = crate::train::run_dir::RunDir::new(run?);
        match self.reader {
            Reader::Loaded => None,
            Reader::Untrained => Some(dir.initial()),
            Reader::Trained => Some(dir.final_model()),
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, worker: &Worker, view: Option<&DatasetView>, run: Option<&Path>, model_loaded: bool, device: DeviceChoice, busy: bool) {
        ui.heading("Memory inspector");
        let Some(view) = view else {
            ui.label("Generate or open a dataset in the Exercises tab first: the inspector reads one of its exercises and shows what the memory keeps.");
            return;
        };
        self.controls(ui, worker, view, run, model_loaded, device, busy);
        ui.separator();
        if self.reading.running {
            if let Some(e) = self.selected.and_then(|i| view.exercises.get(i)) {
                self.reading.live(ui, worker, &e.chunks);
            }
            return;
        }
        if let Some(n) = &self.reading.note {
            ui.weak(n);
        }
        match &self.result {
            Some(r) => result(ui, r, &mut self.reading),
            None => {
                ui.weak("Pick an exercise and press Read: the model reads its chunks one by one, and each memory it writes appears here.");
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn controls(&mut self, ui: &mut egui::Ui, worker: &Worker, view: &DatasetView, run: Option<&Path>, model_loaded: bool, device: DeviceChoice, busy: bool) {
        let candidates = self.candidates(view);
        if self.selected.is_none_or(|s| !candidates.contains(&s)) {
            self.selected = candidates.first().copied();
        }
        let label = |i: usize| {
            let e = &view.exercises[i];
            let probes = view.probes_of(&e.id).count();
            format!("{} · {} chunks · {probes} probes · {}", e.doc_id, e.chunks.len(), e.split)
        };
        ui.horizontal(|ui| {
            ui.label("Exercise");
            egui::ComboBox::from_id_salt("inspect-exercise").width(380.0).selected_text(self.selected.map(label).unwrap_or_else(|| "none".into())).show_ui(ui, |ui| {
                for &i in &candidates {
                    ui.selectable_value(&mut self.selected, Some(i), label(i));
                }
            });
            ui.checkbox(&mut self.held_out_only, "held-out only");
        });
        let trained_there = run.is_some_and(|r| crate::train::run_dir::RunDir::new(r).final_model().exists());
        ui.horizontal(|ui| {
            ui.label("Read with");
            ui.selectable_value(&mut self.reader, Reader::Loaded, "loaded model");
            ui.add_enabled_ui(run.is_some(), |ui| ui.selectable_value(&mut self.reader, Reader::Untrained, "untrained start (RUN/initial)"));
            ui.add_enabled_ui(trained_there, |ui| ui.selectable_value(&mut self.reader, Reader::Trained, "trained (RUN/final)"));
            ui.label("memory tokens");
            ui.add(egui::DragValue::new(&mut self.memory_tokens).range(4..=4096));
            ui.label("answer tokens");
            ui.add(egui::DragValue::new(&mut self.answer_tokens).range(1..=512));
            ui.label("recall distances up to");
            ui.add(egui::DragValue::new(&mut self.max_distance).range(0..=32));
        });
        let has_model = match self.reader {
            Reader::Loaded => model_loaded,
            Reader::Untrained => run.is_some(),
            Reader::Trained => trained_there,
        };
        let ready = has_model && self.selected.is_some() && !busy && !self.reading.running;
        let hint = if has_model { "wait for the task under way" } else { "load a model in the Model tab (or train one)" };
        if ui.add_enabled(ready, egui::Button::new("Read")).on_disabled_hover_text(hint).clicked() {
            self.start(worker, view, run, device);
        }
    }
}

fn result(ui: &mut egui::Ui, r: &Inspection, reading: &mut Reading) {
    let e = &r.exercise;
    ui.label(format!("Read by {}", r.model));
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(&e.question).italics());
    });
    egui::Grid::new("inspect-answers").striped(true).show(ui, |ui| {
        ui.strong("question");
        ui.strong("gold");
        ui.strong("answer");
        ui.strong("exact");
        ui.strong("F1");
        ui.end_row();
        for rec in &r.records {
            let what = match rec.distance {
                None => "final answer ([MASK])".to_string(),
                Some(d) => format!("recall, {d} update(s) later"),
            };
            ui.label(what);
            ui.label(&rec.gold);
            ui.label(if rec.prediction.is_empty() { "(empty)" } else { &rec.prediction });
            ui.label(if rec.exact > 0.0 { RichText::new("yes").color(egui::Color32::LIGHT_GREEN) } else { RichText::new("no").color(egui::Color32::LIGHT_RED) });
            ui.label(format!("{:.2}", rec.f1));
            ui.end_row();
        }
    });
    if let Some(reply) = r.trace.answer_turn().map(|t| t.text.as_str()) {
        ui.horizontal_wrapped(|ui| {
            ui.weak("Final reply:");
            ui.label(reply);
        });
    }
    reading.review(ui, &e.chunks, &r.trace.memories, &r.tracked());
}
