//! MemTrain Studio's window: one struct per panel, a worker thread for everything heavy, and
//! settings that persist between launches.

pub mod ask_panel;
pub mod chat_panel;
pub mod dialogs;
pub mod documents_panel;
pub mod eval_panel;
pub mod exercises_panel;
pub mod inspector_panel;
pub mod memory_view;
pub mod model_panel;
pub mod state;
pub mod train_panel;
pub mod worker;

use ask_panel::AskPanel;
use chat_panel::ChatPanel;
use documents_panel::DocumentsPanel;
use eval_panel::EvalPanel;
use exercises_panel::{ExercisesAction, ExercisesPanel};
use inspector_panel::InspectorPanel;
use model_panel::ModelPanel;
use state::Settings;
use train_panel::TrainPanel;
use std::path::{Path, PathBuf};
use worker::{Event, Worker};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Model,
    Documents,
    Exercises,
    Train,
    Evaluate,
    Inspector,
    Ask,
    Chat,
}

impl Tab {
    /// `MEMTRAIN_START_TAB=documents` and friends (screenshots, demos).
    fn from_name(name: &str) -> Option<Tab> {
        match name.to_ascii_lowercase().as_str() {
            "model" => Some(Tab::Model),
            "documents" => Some(Tab::Documents),
            "exercises" => Some(Tab::Exercises),
            "train" => Some(Tab::Train),
            "evaluate" => Some(Tab::Evaluate),
            "inspector" => Some(Tab::Inspector),
            "ask" => Some(Tab::Ask),
            "chat" => Some(Tab::Chat),
            _ => None,
        }
    }
}

pub struct StudioApp {
    pub settings: Settings,
    worker: Worker,
    pub tab: Tab,
    pub model: ModelPanel,
    pub documents: DocumentsPanel,
    pub exercises: ExercisesPanel,
    pub train: TrainPanel,
    pub evaluate: EvalPanel,
    pub inspector: InspectorPanel,
    pub ask: AskPanel,
    pub chat: ChatPanel,
    pub busy: Option<String>,
    pub error: Option<String>,
    /// Where datasets are written (`<data dir>/datasets/<name>`).
    pub data_dir: PathBuf,
    /// Screenshots and demos: a reading to start by itself once the model (and, for the
    /// inspector, a dataset) is there (`MEMTRAIN_AUTORUN=inspector|ask`, `MEMTRAIN_ASK=question`).
    autorun: Option<Tab>,
    dialogs: dialogs::Dialogs,
}

const SETTINGS_KEY: &str = "memtrain-settings";

impl StudioApp {
    pub fn new(ctx: &egui::Context, storage: Option<&dyn eframe::Storage>) -> Self {
        let settings: Settings = storage.and_then(|s| eframe::get_value(s, SETTINGS_KEY)).unwrap_or_default();
        let mut app = Self::with_settings(ctx, settings, crate::checkpoint::default_model::data_dir());
        // First launch: the last model, else the default one (if installed).
        let start = app.settings.model_path.clone().filter(|p| p.exists());
        let default_there = crate::checkpoint::default_model::path().exists();
        if start.is_some() || default_there {
            app.model.load(&mut app.settings, &app.worker, start);
        }
        // Screenshots and demos: `MEMTRAIN_OPEN=a.pdf:folder:dataset-dir` acts as a drop (a
        // folder holding exercises.jsonl opens as a dataset); `MEMTRAIN_START_TAB=exercises`.
        if let Some(list) = std::env::var_os("MEMTRAIN_OPEN") {
            let (datasets, drops): (Vec<PathBuf>, Vec<PathBuf>) =
                std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()).partition(|p| p.join(crate::exercises::dataset::EXERCISES_FILE).is_file());
            app.drop_paths(drops);
            for dir in datasets {
                app.worker.send(worker::Request::OpenDataset { dir });
            }
        }
        if let Some(tab) = std::env::var("MEMTRAIN_START_TAB").ok().and_then(|t| Tab::from_name(&t)) {
            app.tab = tab;
        }
        app.autorun = std::env::var("MEMTRAIN_AUTORUN").ok().and_then(|t| Tab::from_name(&t));
        if let Ok(q) = std::env::var("MEMTRAIN_ASK") {
            app.ask.question = q;
        }
        app
    }

    /// The app without loading any model: what tests build (`data_dir` receives datasets).
    pub fn with_settings(ctx: &egui::Context, settings: Settings, data_dir: PathBuf) -> Self {
        let wake_ctx = ctx.clone();
        let worker = Worker::spawn(move || wake_ctx.request_repaint());
        StudioApp {
            settings,
            worker,
            tab: Tab::Documents,
            model: ModelPanel::default(),
            documents: DocumentsPanel::default(),
            exercises: ExercisesPanel::default(),
            train: TrainPanel::default(),
            evaluate: EvalPanel::default(),
            inspector: InspectorPanel::default(),
            ask: AskPanel::default(),
            chat: ChatPanel::default(),
            busy: None,
            error: None,
            data_dir,
            autorun: None,
            dialogs: dialogs::Dialogs::default(),
        }
    }

    /// Starts the `MEMTRAIN_AUTORUN` reading as soon as what it needs has arrived.
    fn autorun(&mut self) {
        let Some(tab) = self.autorun else { return };
        if self.model.loaded.is_none() || self.busy.is_some() || self.documents.loading {
            return;
        }
        match tab {
            Tab::Inspector => {
                let Some(view) = self.exercises.view.as_ref() else { return };
                let run = self.train.current_run(&self.data_dir, Some(&view.dir));
                self.inspector.start(&self.worker, view, run.as_deref(), self.settings.device);
                if self.inspector.reading.running {
                    self.tab = Tab::Inspector;
                }
            }
            Tab::Ask if !self.documents.reports.is_empty() => {
                self.ask.document = Some(0);
                self.ask.ask(&self.worker, &self.documents.reports);
                self.tab = Tab::Ask;
            }
            _ => return,
        }
        self.autorun = None;
    }

    fn drain_events(&mut self) {
        while let Ok(ev) = self.worker.events.try_recv() {
            match ev {
                Event::Busy(what) => self.busy = Some(what),
                Event::Adapters(list) => {
                    self.busy = None;
                    self.model.adapters = Some(list);
                }
                Event::ModelLoaded { info, device, seconds, f16_panels } => {
                    self.busy = None;
                    self.error = None;
                    self.model.path_text = info.path.display().to_string();
                    self.model.loaded = Some((*info, device));
                    // The Model tab stays: its card shows what was loaded and where it runs.
                    let half = if f16_panels { ", decoding with f16 weights" } else { "" };
                    self.model.load_note = Some(format!("loaded in {seconds:.1} s{half}"));
                    self.chat.last_stats = Some(format!("model loaded in {seconds:.1} s"));
                }
                Event::ChatText(t) => self.chat.pending = Some(t),
                Event::ChatDone { tokens, seconds, cancelled } => {
                    let note = if cancelled { " (stopped)" } else { "" };
                    self.chat.finish(format!("{tokens} tokens in {seconds:.1} s{note}"));
                }
                Event::DocProgress { done, total, current } => self.documents.progress = Some((done, total, current)),
                Event::DocLoaded(r) => self.documents.loaded(*r),
                Event::DocFailed(e) => self.documents.failed(e),
                Event::DocsDone { cancelled } => {
                    self.busy = None;
                    self.documents.done(cancelled);
                }
                Event::ExercisesProgress(p) => self.exercises.progress = Some(p),
                Event::ExercisesReady(view) => {
                    self.busy = None;
                    self.exercises.ready(*view);
                }
                Event::ExercisesCancelled => {
                    self.busy = None;
                    self.exercises.cancelled();
                }
                Event::TrainStep { record, total } => self.train.on_step(*record, total),
                Event::TrainEval(e) => self.train.on_eval(*e),
                Event::TrainDone(note) => {
                    self.busy = None;
                    self.train.finished(note);
                }
                Event::EvalReport(r) => {
                    self.busy = None;
                    self.evaluate.on_report(*r);
                }
                Event::Reading(p) => {
                    if self.inspector.reading.running {
                        self.inspector.reading.on_progress(p);
                    } else if self.ask.reading.running {
                        self.ask.reading.on_progress(p);
                    }
                }
                Event::Inspected(r) => {
                    self.busy = None;
                    self.inspector.on_result(*r);
                }
                Event::AskChunks(c) => self.ask.on_chunks(c),
                Event::Answered(a) => {
                    self.busy = None;
                    self.ask.on_answer(*a);
                }
                Event::Stopped(note) => {
                    self.busy = None;
                    self.stop_readings(&note);
                }
                Event::Error(e) => {
                    self.busy = None;
                    self.stop_readings("failed");
                    self.documents.loading = false;
                    self.exercises.running = false;
                    if self.chat.pending.is_some() {
                        self.chat.finish("failed".into());
                    }
                    self.error = Some(e);
                }
            }
        }
    }

    /// Paths from a closed Open dialog go where a drop of them would.
    fn take_picked(&mut self) {
        use dialogs::Purpose;
        let Some((purpose, paths)) = self.dialogs.poll() else { return };
        match purpose {
            Purpose::Documents | Purpose::DocumentFolder if !paths.is_empty() => {
                self.documents.add_paths(paths, &mut self.settings, &self.worker);
                self.tab = Tab::Documents;
            }
            Purpose::ModelFile | Purpose::ModelFolder => {
                if let Some(p) = paths.into_iter().next() {
                    self.model.load(&mut self.settings, &self.worker, Some(p));
                }
            }
            Purpose::ExportReport => {
                let dataset = self.exercises.view.as_ref().map(|v| v.dir.clone());
                if let (Some(to), Some(run)) = (paths.into_iter().next(), self.train.current_run(&self.data_dir, dataset.as_deref())) {
                    match dialogs::copy_files(&eval_panel::report_dir(&run), &to) {
                        Ok(n) => self.evaluate.note = Some(format!("exported {n} files to {}", to.display())),
                        Err(e) => self.error = Some(format!("export failed: {e:#}")),
                    }
                }
            }
            _ => {}
        }
    }

    /// A reading or evaluation ended without a result: every panel waiting for one says so.
    fn stop_readings(&mut self, note: &str) {
        for reading in [&mut self.inspector.reading, &mut self.ask.reading] {
            if reading.running {
                reading.stopped(note.to_string());
            }
        }
        if self.evaluate.running {
            self.evaluate.running = false;
            self.evaluate.note = Some(note.to_string());
        }
    }

    fn handle_drops(&mut self, ui: &egui::Ui) {
        let dropped: Vec<PathBuf> = ui.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).collect());
        self.drop_paths(dropped);
    }

    /// What a drop on the window does: a `.gguf` file or a folder holding a model loads that
    /// model; everything else goes to the Documents panel.
    pub fn drop_paths(&mut self, paths: Vec<PathBuf>) {
        if paths.is_empty() {
            return;
        }
        let (models, docs): (Vec<PathBuf>, Vec<PathBuf>) = paths.into_iter().partition(|p| is_model(p));
        if let Some(p) = models.into_iter().next() {
            self.model.load(&mut self.settings, &self.worker, Some(p));
            self.tab = Tab::Model;
        }
        if !docs.is_empty() {
            self.documents.add_paths(docs, &mut self.settings, &self.worker);
            self.tab = Tab::Documents;
        }
    }

    /// Draws the drop hint while files hover over the window.
    fn drop_overlay(&self, ui: &egui::Ui) {
        let hovering = ui.input(|i| i.raw.hovered_files.len());
        if hovering == 0 {
            return;
        }
        let ctx = ui.ctx();
        let painter = ctx.layer_painter(egui::LayerId::new(egui::Order::Foreground, egui::Id::unique("drop-overlay")));
        let rect = ctx.content_rect();
        painter.rect_filled(rect, 0.0, egui::Color32::from_black_alpha(180));
        let text = format!("Drop {hovering} item(s): documents are read, a .gguf file or model folder is loaded");
        painter.text(rect.center(), egui::Align2::CENTER_CENTER, text, egui::FontId::proportional(20.0), egui::Color32::WHITE);
    }
}

/// A `.gguf` file, or a folder with `config.json` or a `.gguf` file at its top level.
fn is_model(p: &Path) -> bool {
    if p.is_dir() {
        if p.join("config.json").is_file() {
            return true;
        }
        let Ok(rd) = std::fs::read_dir(p) else { return false };
        return rd.filter_map(|e| e.ok()).any(|e| e.path().extension().is_some_and(|x| x.eq_ignore_ascii_case("gguf")));
    }
    p.extension().is_some_and(|x| x.eq_ignore_ascii_case("gguf"))
}

impl eframe::App for StudioApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.drain_events();
        self.take_picked();
        self.autorun();
        self.handle_drops(ui);
        self.drop_overlay(ui);
        egui::Panel::top("tabs").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.strong("MemTrain Studio");
                ui.separator();
                ui.selectable_value(&mut self.tab, Tab::Model, "Model");
                ui.selectable_value(&mut self.tab, Tab::Documents, "Documents");
                ui.selectable_value(&mut self.tab, Tab::Exercises, "Exercises");
                ui.selectable_value(&mut self.tab, Tab::Train, "Train");
                ui.selectable_value(&mut self.tab, Tab::Evaluate, "Evaluate");
                ui.selectable_value(&mut self.tab, Tab::Inspector, "Inspector");
                ui.selectable_value(&mut self.tab, Tab::Ask, "Ask");
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
        let mut action = ExercisesAction::None;
        egui::CentralPanel::default().show(ui, |ui| match self.tab {
            Tab::Model => self.model.ui(ui, &mut self.settings, &self.worker, &mut self.dialogs, busy),
            Tab::Documents => self.documents.ui(ui, &mut self.settings, &self.worker, &mut self.dialogs, busy),
            Tab::Exercises => {
                let docs = self.documents.doc_paths();
                action = self.exercises.ui(ui, &mut self.settings, &self.worker, &docs, &self.data_dir, busy);
            }
            Tab::Train => {
                let dataset = self.exercises.view.as_ref().map(|v| v.dir.clone());
                self.train.ui(ui, &self.worker, dataset.as_deref(), &self.data_dir, self.settings.model_path.as_deref(), self.settings.device, &mut self.settings.train_precision, busy && !self.train.running);
            }
            Tab::Evaluate => {
                let dataset = self.exercises.view.as_ref().map(|v| v.dir.clone());
                let run = self.train.current_run(&self.data_dir, dataset.as_deref());
                self.evaluate.ui(ui, &self.worker, &mut self.dialogs, run.as_deref(), dataset.as_deref(), self.settings.device, busy);
            }
            Tab::Inspector => {
                let dataset = self.exercises.view.as_ref();
                let run = self.train.current_run(&self.data_dir, dataset.map(|v| v.dir.as_path()));
                self.inspector.ui(ui, &self.worker, dataset, run.as_deref(), self.model.loaded.is_some(), self.settings.device, busy);
            }
            Tab::Ask => self.ask.ui(ui, &self.worker, &self.documents.reports, self.model.loaded.is_some(), busy),
            Tab::Chat => self.chat.ui(ui, &mut self.settings, &self.worker, ready),
        });
        if action == ExercisesAction::ShowDocuments {
            self.tab = Tab::Documents;
        }
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
