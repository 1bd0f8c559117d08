//! Chat panel: talk to the loaded model with its own chat template; the answer streams in
//! token by token and can be stopped.

use super::state::Settings;
use super::worker::{Request, Worker};
use crate::checkpoint::chat_template::ChatMessage;
use crate::generate::SamplingParams;

#[derive(Default)]
pub struct ChatPanel {
    pub history: Vec<ChatMessage>,
    pub input: String,
    /// The answer being generated, not yet in `history`.
    pub pending: Option<String>,
    pub last_stats: Option<String>,
}

impl ChatPanel {
    pub fn send(&mut self, settings: &Settings, worker: &Worker) {
        let text = self.input.trim().to_string();
        if text.is_empty() {
            return;
        }
        self.history.push(ChatMessage { role: "user".into(), content: text });
        self.input.clear();
        self.pending = Some(String::new());
        let params = SamplingParams { temperature: settings.temperature, max_new_tokens: settings.max_tokens, ..Default::default() };
        worker.send(Request::Chat { history: self.history.clone(), params });
    }

    pub fn finish(&mut self, stats: String) {
        if let Some(answer) = self.pending.take() {
            self.history.push(ChatMessage { role: "assistant".into(), content: answer });
        }
        self.last_stats = Some(stats);
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, settings: &mut Settings, worker: &Worker, model_ready: bool) {
        ui.heading("Chat");
        if !model_ready {
            ui.label("Load a model in the Model panel to chat with it.");
            return;
        }
        ui.horizontal(|ui| {
            ui.label("Temperature");
            ui.add(egui::Slider::new(&mut settings.temperature, 0.0..=1.5));
            ui.label("Max tokens");
            ui.add(egui::DragValue::new(&mut settings.max_tokens).range(1..=4096));
            if ui.button("Clear").clicked() {
                self.history.clear();
            }
        });
        ui.separator();
        let input_height = 60.0;
        egui::ScrollArea::vertical()
            .max_height(ui.available_height() - input_height)
            .stick_to_bottom(true)
            .show(ui, |ui| {
                for m in &self.history {
                    message(ui, &m.role, &m.content);
                }
                if let Some(p) = &self.pending {
                    message(ui, "assistant", if p.is_empty() { "…" } else { p });
                }
            });
        ui.separator();
        ui.horizontal(|ui| {
            let generating = self.pending.is_some();
            let edit = ui.add_enabled(
                !generating,
                egui::TextEdit::singleline(&mut self.input).hint_text("Ask something, e.g. What is the capital of Japan?").desired_width(520.0),
            );
            let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if generating {
                if ui.button("Stop").clicked() {
                    worker.cancel();
                }
            } else if ui.button("Send").clicked() || enter {
                self.send(settings, worker);
            }
            if let Some(s) = &self.last_stats {
                ui.weak(s);
            }
        });
    }
}

fn message(ui: &mut egui::Ui, role: &str, text: &str) {
    ui.horizontal_wrapped(|ui| {
        ui.strong(format!("{role}:"));
        ui.label(text);
    });
    ui.add_space(4.0);
}
