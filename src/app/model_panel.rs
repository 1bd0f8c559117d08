//! Model panel: which model is loaded, on which device, and how to load another one (a path,
//! a recent file, or a .gguf / folder dropped anywhere on the window).

use super::dialogs::{Dialogs, Purpose};
use super::state::Settings;
use super::worker::{Request, Worker};
use crate::checkpoint::ModelInfo;
use crate::device::{DeviceChoice, DeviceInfo};
use std::path::PathBuf;

#[derive(Default)]
pub struct ModelPanel {
    pub path_text: String,
    pub loaded: Option<(ModelInfo, DeviceInfo)>,
    /// The wgpu adapters, once asked for (the worker opens each one to name it).
    pub adapters: Option<Vec<(usize, DeviceInfo)>>,
    /// "loaded in 1.2 s"
    pub load_note: Option<String>,
}

impl ModelPanel {
    pub fn load(&mut self, settings: &mut Settings, worker: &Worker, path: Option<PathBuf>) {
        if let Some(p) = &path {
            settings.remember_model(p.clone());
            self.path_text = p.display().to_string();
        }
        worker.send(Request::LoadModel { path, device: settings.device, cpu_f16_panels: settings.cpu_f16_panels });
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, settings: &mut Settings, worker: &Worker, dialogs: &mut Dialogs, busy: bool) {
        ui.heading("Model");
        match &self.loaded {
            Some((info, device)) => {
                info_card(ui, info, device);
                if let Some(n) = &self.load_note {
                    ui.weak(format!("{n}. Next: Documents (add your files), or Ask / Chat to try the model as it is."));
                }
            }
            None => {
                ui.label("No model loaded yet. The default model (SmolLM2-135M-Instruct) loads when it is installed;");
                ui.label("otherwise run `memtrain fetch-model`, or drop a .gguf file or a Hugging Face folder on this window.");
            }
        }
        ui.separator();
        ui.horizontal_wrapped(|ui| {
            ui.label("Device:");
            let auto = ui.selectable_value(&mut settings.device, DeviceChoice::Auto, "Auto");
            auto.on_hover_text("a hardware GPU when there is one, otherwise the CPU backend");
            ui.selectable_value(&mut settings.device, DeviceChoice::Wgpu, "GPU (wgpu default)");
            ui.selectable_value(&mut settings.device, DeviceChoice::Cpu, "CPU");
            match &self.adapters {
                None => {
                    if ui.add_enabled(!busy, egui::Button::new("Find GPUs…")).clicked() {
                        worker.send(Request::ListAdapters);
                    }
                }
                Some(list) if list.is_empty() => {
                    ui.weak("no wgpu adapter on this machine");
                }
                Some(list) => {
                    for (i, info) in list {
                        ui.selectable_value(&mut settings.device, DeviceChoice::Adapter(*i), format!("{i}: {info}"));
                    }
                }
            }
        });
        ui.checkbox(&mut settings.cpu_f16_panels, "f16 decode weights on the CPU (from the next Load)").on_hover_text(
            "The CPU's decode kernels stream their copy of the weights in f16: half the bytes per generated token \
             (SmolLM2-135M answered 1.6× faster one sequence at a time on 2 x86 cores; the copy takes 256 instead of 513 MB) and \
             next-token logits move by ~0.01. Training keeps f32.",
        );
        if self.loaded.as_ref().is_some_and(|(_, d)| d.kind == "CPU") && self.adapters.as_ref().is_some_and(|l| l.iter().any(|(_, d)| d.kind == "GPU")) {
            ui.weak("A GPU was found: pick it and press Load to move the model there.");
        }
        ui.horizontal(|ui| {
            ui.label("Model path:");
            ui.add(egui::TextEdit::singleline(&mut self.path_text).hint_text(".gguf file or HF folder").desired_width(420.0));
            let path = (!self.path_text.trim().is_empty()).then(|| PathBuf::from(self.path_text.trim()));
            if ui.add_enabled(!busy, egui::Button::new("Load")).clicked() {
                self.load(settings, worker, path);
            }
            if ui.add_enabled(!busy, egui::Button::new("Load default")).clicked() {
                self.load(settings, worker, None);
            }
        });
        ui.horizontal(|ui| {
            let free = !busy && !dialogs.open();
            if ui.add_enabled(free, egui::Button::new("Open GGUF file…")).clicked() {
                dialogs.show(Purpose::ModelFile, ui.ctx());
            }
            if ui.add_enabled(free, egui::Button::new("Open HF folder…")).clicked() {
                dialogs.show(Purpose::ModelFolder, ui.ctx());
            }
            ui.weak("or drop a .gguf file or a model folder on the window");
        });
        if !settings.recent_models.is_empty() {
            ui.label("Recent:");
            for p in settings.recent_models.clone() {
                if ui.add_enabled(!busy, egui::Link::new(p.display().to_string())).clicked() {
                    self.load(settings, worker, Some(p));
                }
            }
        }
    }
}

fn info_card(ui: &mut egui::Ui, info: &ModelInfo, device: &DeviceInfo) {
    let c = &info.config;
    egui::Grid::new("model-info").num_columns(2).striped(true).show(ui, |ui| {
        let mut row = |k: &str, v: String| {
            ui.label(k);
            ui.label(v);
            ui.end_row();
        };
        row("Name", info.name.clone());
        row("File", info.path.display().to_string());
        row("Architecture", c.architecture.name().to_string());
        row("Parameters", format!("{:.1} M", info.parameters as f64 / 1e6));
        row("Layers / hidden", format!("{} / {}", c.num_layers, c.hidden_size));
        row("Heads (kv)", format!("{} ({})", c.num_heads, c.num_kv_heads));
        row("Vocabulary", c.vocab_size.to_string());
        row("Context", c.max_position_embeddings.to_string());
        let types: Vec<String> = info.tensor_types.iter().map(|(k, v)| format!("{k}×{v}")).collect();
        row("Tensor types", types.join(", "));
        row("Chat template", if info.has_chat_template { "yes".into() } else { "ChatML fallback".into() });
        row("Runs on", device.to_string());
    });
}
