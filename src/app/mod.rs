//! MemTrain Studio's window: one struct per panel, a worker thread for everything heavy, and
//! settings that persist between launches.

pub mod chat_panel;
pub mod model_panel;
pub mod state;
pub mod worker;

use chat_panel::ChatPanel;
use model_panel::ModelPanel;
use state::Settings;
use worker::{Event, Worker};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Model,
    Chat,
}

pub struct StudioApp {
    settings: Settings,
    worker: Worker,
    tab: Tab,
    model: ModelPanel,
    chat: ChatPanel,
    busy: Option<String>,
    error: Option<String>,
}

const SETTINGS_KEY: &str = "memtrain-settings";

impl StudioApp {
    pub fn new(ctx: &egui::Context, storage: Option<&dyn eframe::Storage>) -> Self {
        let settings: Settings = storage.and_then(|s| eframe::get_value(s, SETTINGS_KEY)).unwrap_or_default();
        let wake_ctx = ctx.clone();
        let worker = Worker::spawn(move || wake_ctx.request_repaint());
        let mut app = StudioApp { settings, worker, tab: Tab::Model, model: ModelPanel::default(), chat: ChatPanel::default(), busy: None, error: None };
        // First launch: the last model, else the default one (if installed).
        let start = app.settings.model_path.clone().filter(|p| p.exists());
        let default_there = crate::checkpoint::default_model::path().exists();
        if start.is_some() || default_there {
            app.model.load(&mut app.settings, &app.worker, start);
        }
        app
    }

    fn drain_events(&mut self) {
        while let Ok(ev) = self.worker.events.try_recv() {
            match ev {
                Event::Busy(what) => self.busy = Some(what),
                Event::ModelLoaded { info, device, seconds } => {
                    self.busy = None;
                    self.error = None;
                    self.model.path_text = info.path.display().to_string();
                    self.model.loaded = Some((*info, device));
                    self.chat.last_stats = Some(format!("model loaded in {seconds:.1} s"));
                    self.tab = Tab::Chat;
                }
                Event::ChatText(t) => self.chat.pending = Some(t),
                Event::ChatDone { tokens, seconds, cancelled } => {
                    let note = if cancelled { " (stopped)" } else { "" };
                    self.chat.finish(format!("{tokens} tokens in {seconds:.1} s{note}"));
                }
                Event::Error(e) => {
                    self.busy = None;
                    if self.chat.pending.is_some() {
                        self.chat.finish("failed".into());
                    }
                    self.error = Some(e);
                }
            }
        }
    }

    fn handle_drops(&mut self, ui: &egui::Ui) {
        let dropped: Vec<std::path::PathBuf> = ui.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).collect());
        if let Some(p) = dropped.into_iter().find(|p| p.is_dir() || p.extension().is_some_and(|e| e == "gguf")) {
            self.model.load(&mut self.settings, &self.worker, Some(p));
            self.tab = Tab::Model;
        }
    }
}

impl eframe::App for StudioApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.drain_events();
        self.handle_drops(ui);
        egui::Panel::top("tabs").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.strong("MemTrain Studio");
                ui.separator();
                ui.selectable_value(&mut self.tab, Tab::Model, "Model");
                ui.selectable_value(&mut self.tab, Tab::Chat, "Chat");
                if let Some(b) = &self.busy {
                    ui.separator();
                    ui.spinner();
                    ui.label(b);
                }
            });
        });
        if let Some(e) = self.error.clone() {
            egui::Panel::bottom("errors").show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.colored_label(egui::Color32::LIGHT_RED, format!("Error: {e}"));
                    if ui.button("Dismiss").clicked() {
                        self.error = None;
                    }
                });
            });
        }
        let busy = self.busy.is_some();
        let ready = self.model.loaded.is_some() && !busy;
        egui::CentralPanel::default().show(ui, |ui| match self.tab {
            Tab::Model => self.model.ui(ui, &mut self.settings, &self.worker, busy),
            Tab::Chat => self.chat.ui(ui, &mut self.settings, &self.worker, ready),
        });
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SETTINGS_KEY, &self.settings);
    }
}

/// Opens the desktop window.
pub fn run() -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_inner_size([980.0, 700.0]).with_drag_and_drop(true).with_title("MemTrain Studio"),
        ..Default::default()
    };
    eframe::run_native("MemTrain Studio", options, Box::new(|cc| Ok(Box::new(StudioApp::new(&cc.egui_ctx, cc.storage)))))
        .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
