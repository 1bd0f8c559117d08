//! Exercises panel: turns the loaded documents into memory exercises (`dataset::build` on the
//! worker, with a progress bar and Cancel) in a folder under the data directory, and browses
//! a dataset: objective, question, answer and chunks, with `[MASK]`, `[TARGET]` and the answer
//! highlighted.

use super::documents_panel::file_name;
use super::state::Settings;
use super::worker::{DatasetView, Request, Worker};
use crate::exercises::curriculum::{MaskScope, Preset};
use crate::exercises::dataset::{self, Exercise, HELD_OUT, MASKED, RECALL};
use egui::text::LayoutJob;
use egui::{Color32, RichText};
use std::path::{Path, PathBuf};

/// What the panel asks the app to do after drawing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExercisesAction {
    None,
    ShowDocuments,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Filter {
    #[default]
    All,
    Masked,
    Recall,
    HeldOut,
}

#[derive(Default)]
pub struct ExercisesPanel {
    /// Dataset folder name under `<data dir>/datasets`; empty means `<preset>-seed<seed>`.
    pub name: String,
    pub running: bool,
    pub progress: Option<dataset::Progress>,
    pub view: Option<DatasetView>,
    pub selected: usize,
    pub filter: Filter,
    pub note: Option<String>,
    /// Dataset folders found under the data directory (refreshed on demand).
    known: Option<Vec<PathBuf>>,
}

impl ExercisesPanel {
    pub fn out_dir(&self, settings: &Settings, data_dir: &Path) -> PathBuf {
        let name = self.name.trim();
        let name = if name.is_empty() { format!("{}-seed{}", settings.preset.name(), settings.seed) } else { name.replace(['/', '\\'], "_") };
        data_dir.join("datasets").join(name)
    }

    /// Starts a build; the result arrives as `ExercisesReady` or `ExercisesCancelled`.
    pub fn generate(&mut self, settings: &Settings, worker: &Worker, docs: Vec<PathBuf>, data_dir: &Path) {
        let out = self.out_dir(settings, data_dir);
        self.running = true;
        self.progress = None;
        self.note = None;
        worker.send(Request::BuildExercises { docs, out, preset: settings.preset, seed: settings.seed, mask: settings.mask_scope });
    }

    pub fn ready(&mut self, view: DatasetView) {
        self.running = false;
        self.progress = None;
        self.selected = 0;
        self.known = None;
        self.note = view.summary.as_ref().map(|s| s.report());
        self.view = Some(view);
    }

    pub fn cancelled(&mut self) {
        self.running = false;
        self.progress = None;
        self.note = Some("Cancelled; nothing was written.".into());
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, settings: &mut Settings, worker: &Worker, docs: &[PathBuf], data_dir: &Path, busy: bool) -> ExercisesAction {
        let mut action = ExercisesAction::None;
        ui.heading("Exercises");
        ui.horizontal(|ui| {
            ui.label("Preset:");
            for p in [Preset::Tiny, Preset::Small, Preset::Paper] {
                ui.selectable_value(&mut settings.preset, p, p.name()).on_hover_text(preset_hint(p));
            }
            ui.separator();
            ui.label("[MASK]:");
            ui.selectable_value(&mut settings.mask_scope, MaskScope::Everywhere, "everywhere").on_hover_text("Every mention of the entity is masked (the paper's): answerable only by inference from other passages");
            ui.selectable_value(&mut settings.mask_scope, MaskScope::AfterPivot, "after first read").on_hover_text("The entity stays readable in the chunk where it is first seen and is masked after it: the model must carry it in memory (a memory test for small models)");
            ui.separator();
            ui.label("Seed:");
            ui.add(egui::DragValue::new(&mut settings.seed).range(0..=u32::MAX as u64));
            ui.separator();
            ui.label("Name:");
            let hint = format!("{}-seed{}", settings.preset.name(), settings.seed);
            ui.add(egui::TextEdit::singleline(&mut self.name).hint_text(hint).desired_width(140.0));
            let can = !busy && !self.running && !docs.is_empty();
            let why = if docs.is_empty() { "add documents first" } else { "build exercises from the loaded documents" };
            if ui.add_enabled(can, egui::Button::new("Generate")).on_hover_text(why).on_disabled_hover_text(why).clicked() {
                self.generate(settings, worker, docs.to_vec(), data_dir);
            }
        });
        ui.label(RichText::new(format!("Writes to {}", self.out_dir(settings, data_dir).display())).weak().small());
        if self.running {
            ui.horizontal(|ui| {
                let p = self.progress.clone().unwrap_or_default();
                let fraction = if p.bytes_total == 0 { 0.0 } else { p.bytes_done as f32 / p.bytes_total as f32 };
                let text = format!("{} / {} files, {} exercises so far", p.files_done, p.files_total, p.exercises);
                ui.add(egui::ProgressBar::new(fraction).desired_width(320.0).text(text));
                if ui.button("Cancel").clicked() {
                    worker.cancel();
                }
                if let Some(c) = &p.current {
                    ui.label(RichText::new(file_name(c)).weak());
                }
            });
        }
        self.open_existing(ui, worker, data_dir, busy);
        if let Some(n) = &self.note {
            ui.label(RichText::new(n.trim_end()).monospace());
        }
        ui.separator();
        if self.view.is_none() {
            if !self.running {
                action = self.empty_state(ui, docs);
            }
            return action;
        }
        self.browse(ui);
        action
    }

    fn open_existing(&mut self, ui: &mut egui::Ui, worker: &Worker, data_dir: &Path, busy: bool) {
        let known = self.known.get_or_insert_with(|| list_datasets(data_dir));
        if known.is_empty() {
            return;
        }
        let mut open = None;
        ui.horizontal_wrapped(|ui| {
            ui.label("Open a dataset:");
            for d in known.iter() {
                if ui.add_enabled(!busy && !self.running, egui::Link::new(file_name(d))).clicked() {
                    open = Some(d.clone());
                }
            }
        });
        if let Some(dir) = open {
            worker.send(Request::OpenDataset { dir });
        }
    }

    fn empty_state(&self, ui: &mut egui::Ui, docs: &[PathBuf]) -> ExercisesAction {
        let mut action = ExercisesAction::None;
        ui.add_space(24.0);
        ui.vertical_centered(|ui| {
            ui.label(RichText::new("No exercises yet").size(18.0));
            if docs.is_empty() {
                ui.label("Exercises are made from your documents. Add some first:");
                if ui.button("Go to Documents").clicked() {
                    action = ExercisesAction::ShowDocuments;
                }
            } else {
                ui.label(format!("{} documents are ready. Pick a preset (tiny is quickest) and click Generate.", docs.len()));
                ui.label(RichText::new("Each exercise hides an entity behind [MASK] and asks the model to recall it after reading every chunk.").weak());
            }
        });
        action
    }

    fn browse(&mut self, ui: &mut egui::Ui) {
        let Some(view) = &self.view else { return };
        let count = |objective: &str| view.exercises.iter().filter(|e| e.objective == objective).count();
        let held = view.exercises.iter().filter(|e| e.split == HELD_OUT).count();
        ui.label(RichText::new(format!(
            "{} exercises ({} masked-entity, {} recall probes; {} held out) in {}",
            view.exercises.len(),
            count(MASKED),
            count(RECALL),
            held,
            view.dir.display()
        )));
        ui.horizontal(|ui| {
            ui.label("Show:");
            for (f, label) in [(Filter::All, "all"), (Filter::Masked, "masked entity"), (Filter::Recall, "recall probes"), (Filter::HeldOut, "held out")] {
                if ui.selectable_value(&mut self.filter, f, label).changed() {
                    self.selected = 0;
                }
            }
        });
        let filter = self.filter;
        let shown: Vec<&Exercise> = view
            .exercises
            .iter()
            .filter(|e| match filter {
                Filter::All => true,
                Filter::Masked => e.objective == MASKED,
                Filter::Recall => e.objective == RECALL,
                Filter::HeldOut => e.split == HELD_OUT,
            })
            .collect();
        if shown.is_empty() {
            ui.label("No exercise matches this filter.");
            return;
        }
        self.selected = self.selected.min(shown.len() - 1);
        let mut selected = self.selected;
        egui::Panel::left("exercise-list").resizable(true).default_size(260.0).show(ui, |ui| {
            // One line per row: `show_rows` needs rows of equal height.
            ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
            let row_height = ui.spacing().interact_size.y;
            egui::ScrollArea::vertical().id_salt("exercise-rows").auto_shrink([false, false]).show_rows(ui, row_height, shown.len(), |ui, rows| {
                for i in rows {
                    let e = shown[i];
                    let tag = if e.objective == MASKED { "mask" } else { "recall" };
                    if ui.selectable_label(i == selected, format!("{tag} · {}", e.answer)).on_hover_text(&e.id).clicked() {
                        selected = i;
                    }
                }
            });
        });
        self.selected = selected;
        let e = shown[selected];
        egui::ScrollArea::vertical().id_salt("exercise-detail").auto_shrink([false, false]).show(ui, |ui| detail(ui, e));
    }
}

fn detail(ui: &mut egui::Ui, e: &Exercise) {
    let d = &e.difficulty;
    egui::Grid::new("exercise-facts").num_columns(2).show(ui, |ui| {
        ui.label("Objective");
        ui.label(if e.objective == MASKED { "masked entity (objective 1)" } else { "memory recall probe (objective 2)" });
        ui.end_row();
        ui.label("Split");
        ui.label(&e.split);
        ui.end_row();
        ui.label("Id");
        ui.label(&e.id);
        ui.end_row();
        ui.label("Entity type");
        ui.label(e.entity_type.name());
        ui.end_row();
        ui.label("Difficulty");
        ui.label(format!("level {}, {} chunks, distance {}, {} distractors", d.level, d.chunks, d.distance, d.distractors));
        ui.end_row();
    });
    ui.add_space(4.0);
    ui.label(RichText::new("Question").strong());
    ui.label(highlight(ui, &e.question, &e.answer));
    ui.horizontal(|ui| {
        ui.label(RichText::new("Answer").strong());
        ui.label(RichText::new(&e.answer).background_color(super::memory_view::ENTITY).color(Color32::BLACK));
    });
    if let Some(t) = &e.probe_text {
        ui.label(RichText::new(format!("Probe (chunk {})", e.probe_chunk.map_or(0, |c| c + 1))).strong());
        ui.label(highlight(ui, t, &e.answer));
    }
    for (i, c) in e.chunks.iter().enumerate() {
        let mut title = format!("Chunk {} of {}", i + 1, e.chunks.len());
        if e.pivot_chunk == Some(i) {
            title += " · holds [MASK]";
        }
        if e.probe_chunk == Some(i) {
            title += " · probed";
        }
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.label(RichText::new(title).small().strong());
            ui.label(highlight(ui, c, &e.answer));
        });
    }
}

/// `[MASK]` and `[TARGET]` in red, the answer in green.
pub fn highlight(ui: &egui::Ui, text: &str, answer: &str) -> LayoutJob {
    super::memory_view::marked_text(ui, text, &super::memory_view::entity_marks(text, &[answer.to_string()]))
}

fn preset_hint(p: Preset) -> &'static str {
    match p {
        Preset::Tiny => "128-token chunks, 2–4 chunks per exercise: minutes on a laptop CPU",
        Preset::Small => "384-token chunks, 2–8 chunks per exercise",
        Preset::Paper => "5000-token chunks, 5–8 chunks: the paper's setting, needs a GPU",
    }
}

fn list_datasets(data_dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(data_dir.join("datasets")) else { return vec![] };
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join(dataset::EXERCISES_FILE).is_file()).collect();
    v.sort();
    v
}
