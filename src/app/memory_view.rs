//! The chunk-by-chunk view the Memory inspector and Ask share: the chunk read on the left, the
//! memory written after it on the right, with what the update added (green) and dropped (red,
//! struck through), placeholders in red and tracked entities marked wherever they appear.

use super::worker::ReadProgress;
use crate::agent::trace::input_memory;
use crate::eval::inspect::{Change, Presence, memory_diff, presence};
use egui::text::{LayoutJob, TextFormat};
use egui::{Color32, FontId, RichText, Stroke};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Placeholder,
    Entity,
    Added,
    Removed,
}

const PLACEHOLDER: Color32 = Color32::from_rgb(255, 140, 140);
pub const ENTITY: Color32 = Color32::from_rgb(150, 220, 150);
const ADDED: Color32 = Color32::from_rgb(60, 120, 60);
const REMOVED: Color32 = Color32::from_rgb(230, 110, 110);

/// Byte ranges of `needle` in `text`, ASCII case ignored.
pub fn find(text: &str, needle: &str, mark: Mark) -> Vec<(usize, usize, Mark)> {
    if needle.trim().is_empty() {
        return vec![];
    }
    let (hay, needle) = (text.to_ascii_lowercase(), needle.to_ascii_lowercase());
    hay.match_indices(&needle).map(|(i, m)| (i, i + m.len(), mark)).collect()
}

/// `[MASK]` and `[TARGET]` placeholders plus every entity of `entities` in `text`.
pub fn entity_marks(text: &str, entities: &[String]) -> Vec<(usize, usize, Mark)> {
    let mut marks = find(text, "[MASK]", Mark::Placeholder);
    marks.extend(find(text, "[TARGET]", Mark::Placeholder));
    for e in entities {
        marks.extend(find(text, e, Mark::Entity));
    }
    marks
}

/// `text` laid out with possibly overlapping marks (an entity inside added words shows both).
pub fn marked_text(ui: &egui::Ui, text: &str, marks: &[(usize, usize, Mark)]) -> LayoutJob {
    let plain = TextFormat { font_id: FontId::proportional(14.0), color: ui.visuals().text_color(), ..Default::default() };
    let mut cuts: Vec<usize> = marks.iter().flat_map(|m| [m.0, m.1]).chain([0, text.len()]).filter(|&c| text.is_char_boundary(c)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut job = LayoutJob::default();
    job.wrap.max_width = ui.available_width();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let mut f = plain.clone();
        for (_, _, mark) in marks.iter().filter(|m| m.0 <= a && b <= m.1) {
            match mark {
                Mark::Added => {
                    f.background = ADDED;
                    f.color = Color32::WHITE;
                }
                Mark::Removed => {
                    f.color = REMOVED;
                    f.strikethrough = Stroke::new(1.0, REMOVED);
                }
                Mark::Placeholder | Mark::Entity => {
                    f.background = if *mark == Mark::Placeholder { PLACEHOLDER } else { ENTITY };
                    f.color = Color32::BLACK;
                }
            }
        }
        job.append(&text[a..b], 0.0, f);
    }
    job
}

/// The memory after an update as a diff against the one before, entities marked.
fn diff_job(ui: &egui::Ui, previous: &str, memory: &str, entities: &[String]) -> LayoutJob {
    let mut text = String::new();
    let mut marks = Vec::new();
    for piece in memory_diff(previous, memory) {
        let start = text.len();
        text.push_str(&piece.text);
        match piece.change {
            Change::Added => marks.push((start, text.len(), Mark::Added)),
            Change::Removed => marks.push((start, text.len(), Mark::Removed)),
            Change::Same => {}
        }
    }
    marks.extend(entity_marks(&text, entities));
    marked_text(ui, &text, &marks)
}

/// ◀ / ▶ and a slider over `steps` chunks; returns nothing, moves `step`.
pub fn stepper(ui: &mut egui::Ui, step: &mut usize, steps: usize) {
    if steps == 0 {
        return;
    }
    *step = (*step).min(steps - 1);
    ui.horizontal(|ui| {
        if ui.add_enabled(*step > 0, egui::Button::new("< Previous chunk")).clicked() {
            *step -= 1;
        }
        ui.add(egui::Slider::new(step, 0..=steps - 1).custom_formatter(|v, _| format!("chunk {} of {steps}", v as usize + 1)).show_value(true));
        if ui.add_enabled(*step + 1 < steps, egui::Button::new("Next chunk >")).clicked() {
            *step += 1;
        }
    });
}

/// Chunk `step` beside the memory written after it (or "…reading" while it is being written).
pub fn chunk_and_memory(ui: &mut egui::Ui, chunks: &[String], memories: &[String], step: usize, entities: &[String]) {
    let Some(chunk) = chunks.get(step) else { return };
    let height = (ui.available_height() - 8.0).max(120.0);
    ui.columns(2, |cols| {
        cols[0].label(RichText::new(format!("Chunk {} read", step + 1)).strong());
        egui::ScrollArea::vertical().id_salt("mv-chunk").max_height(height).show(&mut cols[0], |ui| {
            let job = marked_text(ui, chunk, &entity_marks(chunk, entities));
            ui.label(job);
        });
        cols[1].label(RichText::new(format!("Memory after chunk {} (green: added, red: dropped)", step + 1)).strong());
        egui::ScrollArea::vertical().id_salt("mv-memory").max_height(height).show(&mut cols[1], |ui| match memories.get(step) {
            Some(m) => {
                let job = diff_job(ui, input_memory(memories, step), m, entities);
                ui.label(job);
            }
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.weak("the model is writing this memory…");
                });
            }
        });
    });
}

/// One row per tracked entity, one cell per memory: picked up, kept, lost or absent. A click
/// on a cell moves the stepper there.
pub fn presence_grid(ui: &mut egui::Ui, memories: &[String], entities: &[String], step: &mut usize) {
    if memories.is_empty() || entities.is_empty() {
        return;
    }
    egui::Grid::new("mv-presence").spacing([4.0, 2.0]).show(ui, |ui| {
        ui.weak("in the memory after chunk");
        for i in 0..memories.len() {
            ui.weak(format!("{}", i + 1));
        }
        ui.end_row();
        for e in entities {
            ui.label(RichText::new(e).color(Color32::BLACK).background_color(ENTITY));
            for (i, p) in presence(memories, e).into_iter().enumerate() {
                let (sym, colour, tip) = match p {
                    Presence::Added => ("+", ADDED, "picked up by this update"),
                    Presence::Kept => ("=", Color32::from_rgb(110, 170, 110), "kept"),
                    Presence::Lost => ("x", REMOVED, "lost by this update"),
                    Presence::Absent => ("·", Color32::GRAY, "not in the memory"),
                };
                let text = RichText::new(sym).color(colour).strong();
                let cell = ui.add(egui::Button::new(text).selected(i == *step).small()).on_hover_text(tip);
                if cell.clicked() {
                    *step = i;
                }
            }
            ui.end_row();
        }
    });
}

/// Where a panel's reading stands: under way (with progress), or how the last one ended, and
/// which chunk the viewer shows.
#[derive(Default)]
pub struct Reading {
    pub running: bool,
    pub started: Option<std::time::Instant>,
    pub progress: Option<ReadProgress>,
    /// The chunk shown (0-based).
    pub step: usize,
    /// How the last reading ended when it gave no result ("reading stopped").
    pub note: Option<String>,
}

impl Reading {
    /// A reading of `turns` turns (chunks + answer; 0 when not known yet) has been sent.
    pub fn begin(&mut self, turns: usize) {
        *self = Reading { running: true, started: Some(std::time::Instant::now()), progress: Some(ReadProgress { turns, ..Default::default() }), step: 0, note: None };
    }

    /// The viewer follows the memory being written.
    pub fn on_progress(&mut self, p: ReadProgress) {
        self.step = p.memories.len().min(p.turns.saturating_sub(2));
        self.progress = Some(p);
    }

    /// The result arrived; the viewer shows chunk `step`.
    pub fn finish(&mut self, step: usize, note: Option<String>) {
        self.running = false;
        self.progress = None;
        self.step = step;
        self.note = note;
    }

    pub fn stopped(&mut self, note: String) {
        self.running = false;
        self.progress = None;
        self.note = Some(note);
    }

    /// While running: progress bar with Stop, and the chunks beside the memories written so far.
    pub fn live(&mut self, ui: &mut egui::Ui, worker: &super::worker::Worker, chunks: &[String]) {
        let Some(p) = self.progress.clone() else { return };
        ui.horizontal(|ui| {
            progress_line(ui, &p, self.started);
            if ui.button("Stop").clicked() {
                worker.cancel();
            }
        });
        stepper(ui, &mut self.step, chunks.len());
        chunk_and_memory(ui, chunks, &p.memories, self.step, &[]);
    }

    /// After a reading: the entity grid, the stepper and the chunk beside its memory.
    pub fn review(&mut self, ui: &mut egui::Ui, chunks: &[String], memories: &[String], tracked: &[String]) {
        presence_grid(ui, memories, tracked, &mut self.step);
        stepper(ui, &mut self.step, chunks.len());
        chunk_and_memory(ui, chunks, memories, self.step, tracked);
    }
}

/// "turn 2 of 5 · 38 tokens · ETA 40 s" for a reading under way since `started`.
pub fn progress_line(ui: &mut egui::Ui, p: &ReadProgress, started: Option<std::time::Instant>) {
    let fraction = if p.turns == 0 { 0.0 } else { p.turns_done as f32 / p.turns as f32 };
    let eta = match started {
        Some(t) if p.turns_done > 0 => {
            let per_turn = t.elapsed().as_secs_f32() / p.turns_done as f32;
            format!(" · ETA {:.0} s", per_turn * (p.turns - p.turns_done) as f32)
        }
        _ => String::new(),
    };
    let stage = if p.turns_done + 1 >= p.turns && p.turns > 0 { "answering".to_string() } else { format!("reading chunk {} of {}", p.turns_done + 1, p.turns.saturating_sub(1)) };
    ui.add(egui::ProgressBar::new(fraction).text(format!("{stage} · {} tokens{eta}", p.tokens)).desired_width(420.0));
}
