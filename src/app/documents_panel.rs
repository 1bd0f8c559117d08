//! Documents panel: the files the exercises will be made from. Files and folders dropped
//! anywhere on the window (or the bundled samples) are read and analysed on the worker; the
//! panel lists each file with its characters, chunks, tokens and entities, names every file
//! that failed and why, and previews the text with the found entities highlighted.

use super::state::Settings;
use super::worker::{DocReport, Request, Worker, preview_end};
use crate::documents::DocError;
use crate::exercises::entities::EntityKind;
use super::dialogs::{Dialogs, Purpose};
use egui::text::LayoutJob;
use egui::{Color32, FontId, RichText, TextFormat};
use std::path::{Path, PathBuf};

#[derive(Default)]
pub struct DocumentsPanel {
    pub reports: Vec<DocReport>,
    pub errors: Vec<DocError>,
    pub selected: Option<usize>,
    /// `(done, total, current file)` while a load runs.
    pub progress: Option<(usize, usize, PathBuf)>,
    pub loading: bool,
    /// What the last load ended with (for instance "stopped after 12 files").
    pub note: Option<String>,
}

impl DocumentsPanel {
    /// Sends files and folders to the worker; results arrive as events.
    pub fn add_paths(&mut self, paths: Vec<PathBuf>, settings: &mut Settings, worker: &Worker) {
        if paths.is_empty() {
            return;
        }
        settings.remember_documents(&paths);
        self.loading = true;
        self.note = None;
        self.progress = None;
        worker.send(Request::LoadDocuments { paths, preset: settings.preset });
    }

    /// A document arrived: replaces an earlier report of the same file.
    pub fn loaded(&mut self, r: DocReport) {
        self.errors.retain(|e| e.path != r.doc.path);
        match self.reports.iter_mut().find(|x| x.doc.path == r.doc.path) {
            Some(x) => *x = r,
            None => self.reports.push(r),
        }
        if self.selected.is_none() {
            self.selected = Some(0);
        }
    }

    pub fn failed(&mut self, e: DocError) {
        self.reports.retain(|r| r.doc.path != e.path);
        self.selected = self.selected.filter(|&i| i < self.reports.len());
        self.errors.retain(|x| x.path != e.path);
        self.errors.push(e);
    }

    pub fn done(&mut self, cancelled: bool) {
        self.loading = false;
        let handled = self.progress.take().map_or(0, |(done, _, _)| done);
        self.note = cancelled.then(|| format!("Stopped after {handled} files; the files read so far are kept."));
    }

    /// Paths of the documents that were read fine (the Exercises panel's input).
    pub fn doc_paths(&self) -> Vec<PathBuf> {
        self.reports.iter().map(|r| r.doc.path.clone()).collect()
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, settings: &mut Settings, worker: &Worker, dialogs: &mut Dialogs, busy: bool) {
        ui.heading("Documents");
        ui.horizontal(|ui| {
            let free = !busy && !dialogs.open();
            if ui.add_enabled(free, egui::Button::new("Add files…")).clicked() {
                dialogs.show(Purpose::Documents, ui.ctx());
            }
            if ui.add_enabled(free, egui::Button::new("Add folder…")).clicked() {
                dialogs.show(Purpose::DocumentFolder, ui.ctx());
            }
            if ui.add_enabled(!busy, egui::Button::new("Add samples")).on_hover_text("the six sample documents that ship with MemTrain").clicked() {
                match samples_dir() {
                    Some(dir) => self.add_paths(vec![dir], settings, worker),
                    None => self.note = Some("The sample documents were not found next to the program.".into()),
                }
            }
            if ui.add_enabled(!busy && !(self.reports.is_empty() && self.errors.is_empty()), egui::Button::new("Clear")).clicked() {
                *self = DocumentsPanel::default();
            }
            ui.label(RichText::new("or drop files and folders anywhere on this window").weak());
        });
        if self.loading {
            ui.horizontal(|ui| {
                let (done, total, current) = self.progress.clone().unwrap_or((0, 0, PathBuf::new()));
                let fraction = if total == 0 { 0.0 } else { done as f32 / total as f32 };
                ui.add(egui::ProgressBar::new(fraction).desired_width(320.0).text(format!("{done} / {total} files")));
                if ui.button("Cancel").clicked() {
                    worker.cancel();
                }
                ui.label(RichText::new(file_name(&current)).weak());
            });
        }
        if let Some(n) = &self.note {
            ui.label(n);
        }
        ui.separator();
        if self.reports.is_empty() && self.errors.is_empty() {
            if !self.loading {
                empty_state(ui);
                self.recent(ui, settings, worker, busy);
            }
            return;
        }
        self.list(ui);
        ui.separator();
        if let Some(r) = self.selected.and_then(|i| self.reports.get(i)) {
            preview(ui, r);
        }
    }

    /// What was added in earlier sessions, one click to read again.
    fn recent(&mut self, ui: &mut egui::Ui, settings: &mut Settings, worker: &Worker, busy: bool) {
        let there: Vec<PathBuf> = settings.recent_documents.iter().filter(|p| p.exists()).cloned().collect();
        if there.is_empty() {
            return;
        }
        ui.add_space(12.0);
        ui.vertical_centered(|ui| {
            ui.label(RichText::new("Recent").strong());
            for p in there {
                if ui.add_enabled(!busy, egui::Link::new(p.display().to_string())).clicked() {
                    self.add_paths(vec![p], settings, worker);
                }
            }
        });
    }

    fn list(&mut self, ui: &mut egui::Ui) {
        let total_chars: usize = self.reports.iter().map(|r| r.doc.chars).sum();
        let total_entities: usize = self.reports.iter().map(|r| r.entities).sum();
        ui.label(format!("{} documents, {} characters, {} entities; {} failed", self.reports.len(), total_chars, total_entities, self.errors.len()));
        egui::ScrollArea::vertical().id_salt("doc-list").max_height(220.0).auto_shrink([false, true]).show(ui, |ui| {
            egui::Grid::new("doc-grid").num_columns(7).striped(true).show(ui, |ui| {
                for h in ["File", "Format", "Characters", "Chunks", "Tokens", "Entities", "Types"] {
                    ui.strong(h);
                }
                ui.end_row();
                for (i, r) in self.reports.iter().enumerate() {
                    if ui.selectable_label(self.selected == Some(i), file_name(&r.doc.path)).on_hover_text(r.doc.path.display().to_string()).clicked() {
                        self.selected = Some(i);
                    }
                    ui.label(r.doc.format.name());
                    ui.label(r.doc.chars.to_string());
                    ui.label(r.chunks.to_string());
                    ui.label(r.tokens.to_string()).on_hover_text(format!("counted by the {} counter", r.counter));
                    ui.label(r.entities.to_string());
                    let kinds: Vec<String> = r.kinds.iter().map(|(k, n)| format!("{} {n}", k.name())).collect();
                    ui.label(RichText::new(kinds.join(", ")).small());
                    ui.end_row();
                }
            });
            for e in &self.errors {
                ui.colored_label(Color32::LIGHT_RED, format!("failed: {}: {} ({})", file_name(&e.path), e.message, e.kind.name()))
                    .on_hover_text(e.path.display().to_string());
            }
        });
    }
}

fn empty_state(ui: &mut egui::Ui) {
    ui.add_space(24.0);
    ui.vertical_centered(|ui| {
        ui.label(RichText::new("No documents yet").size(18.0));
        ui.label("Drag files or folders (PDF, EPUB, DOCX, HTML, Markdown, plain text) onto this window,");
        ui.label("or click “Add samples” to start with six short example documents.");
        ui.label(RichText::new("Then open the Exercises tab to turn them into memory exercises.").weak());
    });
}

/// The text with entity mentions highlighted, one colour per kind, and a legend.
fn preview(ui: &mut egui::Ui, r: &DocReport) {
    ui.horizontal_wrapped(|ui| {
        ui.strong(&r.doc.title);
        ui.label(RichText::new(r.doc.path.display().to_string()).weak().small());
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("Entities:");
        for k in EntityKind::ALL {
            ui.label(RichText::new(k.name()).background_color(kind_colour(k)).color(Color32::BLACK));
        }
    });
    let end = preview_end(&r.doc.text);
    let text = &r.doc.text[..end];
    let mut job = LayoutJob::default();
    job.wrap.max_width = ui.available_width();
    let plain = TextFormat { font_id: FontId::proportional(14.0), color: ui.visuals().text_color(), ..Default::default() };
    let mut at = 0;
    for m in &r.preview_mentions {
        if m.start < at || m.end > text.len() {
            continue;
        }
        job.append(&text[at..m.start], 0.0, plain.clone());
        job.append(&text[m.start..m.end], 0.0, TextFormat { background: kind_colour(m.kind), color: Color32::BLACK, ..plain.clone() });
        at = m.end;
    }
    job.append(&text[at..], 0.0, plain);
    egui::ScrollArea::vertical().id_salt("doc-preview").auto_shrink([false, false]).show(ui, |ui| {
        ui.label(job);
        if end < r.doc.text.len() {
            ui.label(RichText::new(format!("… preview ends here ({} of {} characters shown)", super::worker::PREVIEW_CHARS, r.doc.chars)).weak());
        }
    });
}

pub fn kind_colour(k: EntityKind) -> Color32 {
    match k {
        EntityKind::Person => Color32::from_rgb(140, 190, 255),
        EntityKind::Organisation => Color32::from_rgb(255, 190, 120),
        EntityKind::Place => Color32::from_rgb(150, 220, 150),
        EntityKind::Number => Color32::from_rgb(240, 230, 120),
        EntityKind::Date => Color32::from_rgb(210, 170, 255),
        EntityKind::Title => Color32::from_rgb(255, 170, 200),
        EntityKind::Other => Color32::from_rgb(200, 200, 200),
    }
}

pub fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The bundled sample documents: the source tree's `assets/samples` when it still exists,
/// else `assets/samples` next to the executable or in the working directory.
pub fn samples_dir() -> Option<PathBuf> {
    let built = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/samples"));
    let mut candidates = vec![built];
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(4) {
            candidates.push(dir.join("assets/samples"));
        }
    }
    candidates.push(PathBuf::from("assets/samples"));
    candidates.into_iter().find(|d| d.is_dir())
}
