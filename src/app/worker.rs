//! The app's engine thread. Panels send `Request`s and read `Event`s; nothing heavy ever runs
//! on the UI thread, and every long task can be cancelled through the shared flag.
//!
//! Long tasks (loading documents, building exercises) report progress after each file and
//! check the cancel flag between files; a cancelled task says so with its own event.

use crate::agent::{AgentInput, AgentProgress, Policy, run_agent_observed};
use crate::checkpoint::{ModelInfo, chat_template::ChatMessage};
use crate::device::{DeviceChoice, DeviceInfo};
use crate::generate::SamplingParams;
use crate::model::precision::Precision;
use crate::session::Session;
use crate::documents::chunk::{ApproxCounter, TokenCounter};
use crate::documents::{DocError, Document};
use crate::exercises::curriculum::{Curriculum, Preset};
use crate::exercises::dataset::{self, DatasetOptions, DatasetSummary, Exercise};
use crate::exercises::entities::{EntityKind, EntityTagger, Mention, RuleTagger, Vocab};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

pub enum Request {
    /// `cpu_f16_panels`: on the CPU, the decode kernels' weights in f16 (ignored on wgpu, whose
    /// f16 setting would hold for the whole process, training included).
    LoadModel { path: Option<PathBuf>, device: DeviceChoice, cpu_f16_panels: bool },
    /// Lists the wgpu adapters (opening each one: never on the UI thread).
    ListAdapters,
    Chat { history: Vec<ChatMessage>, params: SamplingParams },
    /// Files and folders (read recursively) to read and analyse for the Documents panel.
    LoadDocuments { paths: Vec<PathBuf>, preset: Preset },
    /// Runs `dataset::build` over `docs` into `out`.
    BuildExercises { docs: Vec<PathBuf>, out: PathBuf, preset: Preset, seed: u64, mask: crate::exercises::MaskScope },
    /// Reads a dataset folder written earlier.
    OpenDataset { dir: PathBuf },
    /// Trains on `data` into the run folder `out` (or resumes the run there); Stop = cancel.
    Train(TrainRequest),
    /// Memory inspector: reads `exercise` with the loaded model (`model: None`) or the model at
    /// `model`, and asks its `probes` at distances up to `max_distance`.
    Inspect { model: Option<PathBuf>, exercise: Box<Exercise>, probes: Vec<Exercise>, memory_tokens: usize, answer_tokens: usize, max_distance: usize, device: DeviceChoice },
    /// Ask: the loaded model reads `text` through the memory agent and answers `question`.
    Ask { source: String, text: String, question: String, agent: ReadBudget },
    /// Compares `baseline` and `trained` on the held-out split of `data`, report files into `out`.
    Evaluate { baseline: PathBuf, trained: PathBuf, data: PathBuf, out: PathBuf, options: crate::eval::report::CompareOptions, device: DeviceChoice },
}

/// A training run the Train panel asks for: the run on `data` in the folder `out`, from
/// `preset` with the panel's choices, or the run there resumed as it was configured.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainRequest {
    pub data: PathBuf,
    pub out: PathBuf,
    /// The model loaded in the app, trained instead of the default one by presets that start
    /// from the default model.
    pub model: Option<PathBuf>,
    pub preset: String,
    pub sft_steps: usize,
    pub grpo_steps: usize,
    pub device: DeviceChoice,
    pub precision: Precision,
    pub resume: bool,
}

impl TrainRequest {
    /// The run's config: a resumed run's saved one (its precision and device too: a resume
    /// continues the same run), with at least the steps asked for; else the preset with the
    /// panel's model, steps, device (`Auto` leaves the preset's) and precision (f32 where the
    /// device is the CPU).
    pub fn config(&self) -> anyhow::Result<crate::train::TrainConfig> {
        use crate::train::{TrainConfig, Trainer, config::ModelSource};
        if self.resume {
            let mut cfg = Trainer::saved_config(&self.out)?;
            cfg.sft.steps = cfg.sft.steps.max(self.sft_steps);
            cfg.grpo_steps = cfg.grpo_steps.max(self.grpo_steps);
            return Ok(cfg);
        }
        let mut cfg = TrainConfig::preset(&self.preset)?;
        if let (ModelSource::Default, Some(m)) = (&cfg.model, &self.model) {
            cfg.model = ModelSource::Path(m.clone());
        }
        (cfg.sft.steps, cfg.grpo_steps) = (self.sft_steps, self.grpo_steps);
        cfg.device = run_device(cfg.device, self.device);
        // The panel's precision is for GPU runs: a run the CPU takes computes in f32.
        cfg.precision = if cfg.device == DeviceChoice::Cpu { Precision::F32 } else { self.precision };
        Ok(cfg)
    }
}

/// The device a new run takes: the app's choice `chosen`, or under `Auto` the preset's own
/// (`preset`; Auto there too lets the trainer pick).
pub fn run_device(preset: DeviceChoice, chosen: DeviceChoice) -> DeviceChoice {
    if chosen == DeviceChoice::Auto { preset } else { chosen }
}

/// Budgets of a memory-agent reading (greedy decoding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadBudget {
    pub chunk_tokens: usize,
    pub memory_tokens: usize,
    pub answer_tokens: usize,
}

/// Where a reading (Ask, inspector, evaluation) stands.
#[derive(Clone, Debug, Default)]
pub struct ReadProgress {
    pub turns_done: usize,
    pub turns: usize,
    /// Tokens generated in the turn under way.
    pub tokens: usize,
    /// Memories written so far by the first rollout (the one Ask and the inspector show).
    pub memories: Vec<String>,
}

/// What Ask returns: the chunks read, every memory, and the answer.
#[derive(Clone, Debug)]
pub struct Answered {
    pub source: String,
    pub question: String,
    pub chunks: Vec<String>,
    pub memories: Vec<String>,
    /// The whole reply of the answer turn, and the answer extracted from it.
    pub reply: String,
    pub answer: String,
    pub seconds: f64,
}

/// One document as the Documents panel shows it: the text plus what the pipeline sees in it.
#[derive(Debug, Clone)]
pub struct DocReport {
    pub doc: Document,
    /// Chunks at the preset's chunk size.
    pub chunks: usize,
    pub tokens: usize,
    /// Which counter gave `tokens` ("approximate" or the model's tokenizer).
    pub counter: String,
    /// Distinct entities (case-folded) in the whole text.
    pub entities: usize,
    /// Distinct entities per kind.
    pub kinds: Vec<(EntityKind, usize)>,
    /// Mentions inside the first `PREVIEW_CHARS` of text (byte offsets into `doc.text`).
    pub preview_mentions: Vec<Mention>,
}

/// How much of a document the preview shows (characters).
pub const PREVIEW_CHARS: usize = 20_000;

/// A dataset read back for browsing.
#[derive(Debug)]
pub struct DatasetView {
    pub dir: PathBuf,
    pub summary: Option<DatasetSummary>,
    pub exercises: Vec<Exercise>,
}

#[derive(Debug)]
pub enum Event {
    Busy(String),
    /// The wgpu adapters as `DeviceChoice::Adapter` numbers them.
    Adapters(Vec<(usize, DeviceInfo)>),
    /// `f16_panels`: the CPU's decode kernels use f16 weights.
    ModelLoaded { info: Box<ModelInfo>, device: DeviceInfo, seconds: f64, f16_panels: bool },
    /// Text generated so far for the current chat answer.
    ChatText(String),
    ChatDone { tokens: usize, seconds: f64, cancelled: bool },
    /// Documents: `done` of `total` files handled so far.
    DocProgress { done: usize, total: usize, current: PathBuf },
    DocLoaded(Box<DocReport>),
    DocFailed(DocError),
    DocsDone { cancelled: bool },
    ExercisesProgress(dataset::Progress),
    ExercisesReady(Box<DatasetView>),
    ExercisesCancelled,
    TrainStep { record: Box<crate::train::metrics::StepRecord>, total: usize },
    TrainEval(Box<crate::eval::HeldOutEval>),
    /// The run ended: finished, stopped with a checkpoint, or failed (the message says which).
    TrainDone(String),
    EvalReport(Box<crate::eval::report::CompareReport>),
    /// A reading (Ask, inspector, evaluation) advanced.
    Reading(ReadProgress),
    Inspected(Box<crate::eval::inspect::Inspection>),
    /// Ask: the chunks the document was cut into, before the reading starts.
    AskChunks(Vec<String>),
    Answered(Box<Answered>),
    /// A reading or evaluation was stopped with the Stop button; nothing was written.
    Stopped(String),
    Error(String),
}

pub struct Worker {
    requests: Sender<Request>,
    pub events: Receiver<Event>,
    cancel: Arc<AtomicBool>,
}

impl Worker {
    /// Starts the thread. `wake` is called after each event so the UI repaints.
    pub fn spawn(wake: impl Fn() + Send + 'static) -> Self {
        let (req_tx, req_rx) = channel::<Request>();
        let (ev_tx, ev_rx) = channel::<Event>();
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        std::thread::Builder::new()
            .name("memtrain-worker".into())
            .spawn(move || serve(req_rx, ev_tx, flag, wake))
            .expect("cannot start the worker thread");
        Worker { requests: req_tx, events: ev_rx, cancel }
    }

    pub fn send(&self, r: Request) {
        self.cancel.store(false, Ordering::SeqCst);
        let _ = self.requests.send(r);
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
}

fn serve(requests: Receiver<Request>, events: Sender<Event>, cancel: Arc<AtomicBool>, wake: impl Fn()) {
    let mut session: Option<Session> = None;
    // A second model the inspector reads with (a run's checkpoint), kept while it is asked for.
    let mut side_model: Option<(PathBuf, Session)> = None;
    // Whether the last Load asked for f16 CPU decode weights: the inspector's second model gets
    // them too, so that both readers run the same arithmetic.
    let mut cpu_f16 = false;
    let send = |e: Event| {
        let _ = events.send(e);
        wake();
    };
    for req in requests {
        match req {
            Request::LoadModel { path, device, cpu_f16_panels } => {
                send(Event::Busy("loading model…".into()));
                let start = std::time::Instant::now();
                session = None; // free the old model first
                side_model = None;
                cpu_f16 = cpu_f16_panels;
                match open_with_weights(path.as_deref(), device, cpu_f16) {
                    Ok((s, f16_panels)) => {
                        send(Event::ModelLoaded {
                            info: Box::new(s.loaded.info.clone()),
                            device: s.device_info.clone(),
                            seconds: start.elapsed().as_secs_f64(),
                            f16_panels,
                        });
                        session = Some(s);
                    }
                    Err(e) => send(Event::Error(format!("{e:#}"))),
                }
            }
            Request::ListAdapters => {
                send(Event::Busy("looking for GPUs…".into()));
                let list = crate::device::adapters().iter().map(|a| (a.index, a.info.clone())).collect();
                send(Event::Adapters(list));
            }
            Request::Chat { history, params } => {
                let Some(s) = &session else {
                    send(Event::Error("load a model first".into()));
                    continue;
                };
                if let Err(e) = chat(s, &history, &params, &cancel, &send) {
                    send(Event::Error(format!("{e:#}")));
                }
            }
            Request::LoadDocuments { paths, preset } => {
                let counter: &dyn TokenCounter = match &session {
                    Some(s) => &s.loaded.tokenizer,
                    None => &ApproxCounter,
                };
                let counter_name = if session.is_some() { "model tokenizer" } else { "approximate" };
                load_documents(&paths, preset, counter, counter_name, &cancel, &send);
            }
            Request::BuildExercises { docs, out, preset, seed, mask } => {
                send(Event::Busy("generating exercises…".into()));
                let mut opts = DatasetOptions::new(docs, out.clone());
                opts.preset = preset;
                opts.seed = seed;
                opts.set_mask_scope(mask);
                if let Some(s) = &session {
                    opts.counter = dataset::counter_from_model(&s.loaded.info.path).ok();
                }
                let result = dataset::build(&opts, &mut |p| {
                    send(Event::ExercisesProgress(p));
                    !cancel.load(Ordering::SeqCst)
                });
                match result {
                    Ok(summary) => match open_dataset(&out, Some(summary)) {
                        Ok(view) => send(Event::ExercisesReady(Box::new(view))),
                        Err(e) => send(Event::Error(format!("{e:#}"))),
                    },
                    Err(e) if e.is::<dataset::Cancelled>() => send(Event::ExercisesCancelled),
                    Err(e) => send(Event::Error(format!("{e:#}"))),
                }
            }
            Request::Train(request) => {
                send(Event::Busy(if request.resume { "resuming training…" } else { "preparing training…" }.into()));
                let note = match train(&request, &cancel, &send) {
                    Ok(crate::train::Outcome::Finished) => format!("finished: the trained model is in {}", request.out.join("final").display()),
                    Ok(crate::train::Outcome::Cancelled { step }) => format!("stopped at step {step} with a checkpoint: Resume continues from there"),
                    Err(e) => format!("training failed: {e:#}"),
                };
                send(Event::TrainDone(note));
            }
            Request::Evaluate { baseline, trained, data, out, options, device } => {
                let go_on = || !cancel.load(Ordering::SeqCst);
                let report = crate::eval::report::compare(Some(&baseline), Some(&trained), &data, &out, options, device, &mut |m| send(Event::Busy(m.to_string())), &go_on);
                match report {
                    Ok(r) => send(Event::EvalReport(Box::new(r))),
                    Err(e) => send(stopped_or_failed("evaluation", e)),
                }
            }
            Request::Inspect { model, exercise, probes, memory_tokens, answer_tokens, max_distance, device } => {
                send(Event::Busy("reading the exercise…".into()));
                let params = crate::eval::greedy(memory_tokens, answer_tokens, crate::train::TrainConfig::tiny_cpu().agent.no_repeat_ngram);
                let result = inspect_with(&session, &mut side_model, model, device, cpu_f16, &exercise, &probes, &params, max_distance, &cancel, &send);
                match result {
                    Ok(i) => send(Event::Inspected(Box::new(i))),
                    Err(e) => send(stopped_or_failed("inspection", e)),
                }
            }
            Request::Ask { source, text, question, agent } => {
                let Some(s) = &session else {
                    send(Event::Error("load a model first".into()));
                    continue;
                };
                send(Event::Busy(format!("reading {source}…")));
                match ask(s, source, &text, question, agent, &cancel, &send) {
                    Ok(a) => send(Event::Answered(Box::new(a))),
                    Err(e) => send(stopped_or_failed("reading", e)),
                }
            }
            Request::OpenDataset { dir } => match open_dataset(&dir, None) {
                Ok(view) => send(Event::ExercisesReady(Box::new(view))),
                Err(e) => send(Event::Error(format!("{e:#}"))),
            },
        }
    }
}

fn train(request: &TrainRequest, cancel: &AtomicBool, send: &dyn Fn(Event)) -> anyhow::Result<crate::train::Outcome> {
    use crate::train::{TrainEvent, Trainer};
    let mut cfg = request.config()?;
    // Likewise where `Auto` finds no GPU (the adapter is opened once and kept for the trainer).
    if !request.resume && cfg.precision == Precision::MixedF16 && cfg.device == DeviceChoice::Auto && !crate::device::compiles_per_shape(&crate::device::select(DeviceChoice::Auto)?.0) {
        cfg.precision = Precision::F32;
    }
    let mut trainer = Trainer::open(cfg, &request.data, &request.out, request.resume)?;
    send(Event::Busy(format!("training on {}…", trainer.device_info)));
    trainer.run(cancel, &mut |e| match e {
        TrainEvent::Step { record, total, .. } => send(Event::TrainStep { record: Box::new(record.clone()), total }),
        TrainEvent::Evaluated(e) => send(Event::TrainEval(Box::new(e.clone()))),
        TrainEvent::Checkpoint { .. } => {}
    })
}

/// The Stop button's cancellation becomes `Stopped`, anything else an error naming the task.
fn stopped_or_failed(task: &str, e: anyhow::Error) -> Event {
    if e.is::<crate::agent::Cancelled>() { Event::Stopped(format!("{task} stopped")) } else { Event::Error(format!("{task} failed: {e:#}")) }
}

/// Turns the agent's progress into `Reading` events (at most one per turn or every 8 tokens,
/// so a fast CPU does not flood the UI) and answers with the cancel flag.
fn reporter<'a>(cancel: &'a AtomicBool, send: &'a dyn Fn(Event)) -> impl FnMut(&AgentProgress) -> bool + 'a {
    move |p: &AgentProgress| {
        if p.tokens % 8 == 0 {
            let memories = p.traces.first().map(|t| t.memories.clone()).unwrap_or_default();
            send(Event::Reading(ReadProgress { turns_done: p.turns_done, turns: p.turns, tokens: p.tokens, memories }));
        }
        !cancel.load(Ordering::SeqCst)
    }
}

/// Opens a model, its CPU decode kernels reading f16 weights when `cpu_f16` (and they run:
/// [`crate::checkpoint::LoadedModel::use_f16_decode_panels`]); returns whether they do. Not
/// [`Session::open_with`]: its f16 on wgpu would hold for the whole process, training included.
fn open_with_weights(path: Option<&Path>, device: DeviceChoice, cpu_f16: bool) -> anyhow::Result<(Session, bool)> {
    let mut s = Session::open(path, device)?;
    let f16 = cpu_f16 && s.loaded.use_f16_decode_panels();
    Ok((s, f16))
}

#[allow(clippy::too_many_arguments)]
fn inspect_with(
    session: &Option<Session>,
    side: &mut Option<(PathBuf, Session)>,
    model: Option<PathBuf>,
    device: DeviceChoice,
    cpu_f16: bool,
    exercise: &Exercise,
    probes: &[Exercise],
    params: &crate::agent::AgentParams,
    max_distance: usize,
    cancel: &AtomicBool,
    send: &dyn Fn(Event),
) -> anyhow::Result<crate::eval::inspect::Inspection> {
    let s = match model {
        None => session.as_ref().ok_or_else(|| anyhow::anyhow!("load a model first (Model panel), or pick a trained one"))?,
        Some(path) => {
            if side.as_ref().is_none_or(|(p, _)| p != &path) {
                *side = None; // free the previous one first
                send(Event::Busy(format!("loading {}…", path.display())));
                *side = Some((path.clone(), open_with_weights(Some(&path), device, cpu_f16)?.0));
            }
            &side.as_ref().expect("just loaded").1
        }
    };
    let name = s.loaded.info.path.display().to_string();
    crate::eval::inspect::inspect(&Policy::from_loaded(&s.loaded), &name, exercise, probes, params, max_distance, &mut reporter(cancel, send))
}

fn ask(s: &Session, source: String, text: &str, question: String, agent: ReadBudget, cancel: &AtomicBool, send: &dyn Fn(Event)) -> anyhow::Result<Answered> {
    let start = std::time::Instant::now();
    if question.trim().is_empty() {
        anyhow::bail!("type a question first");
    }
    let chunks = crate::documents::chunk::chunk_text(text, agent.chunk_tokens, &s.loaded.tokenizer);
    if chunks.is_empty() {
        anyhow::bail!("{source}: no text to read");
    }
    send(Event::AskChunks(chunks.clone()));
    let params = crate::eval::greedy(agent.memory_tokens, agent.answer_tokens, crate::train::TrainConfig::tiny_cpu().agent.no_repeat_ngram);
    let inputs = [AgentInput { chunks, question }];
    let mut trace = run_agent_observed(&Policy::from_loaded(&s.loaded), &inputs, 1, &params, &mut reporter(cancel, send))?.remove(0);
    let reply = trace.answer_turn().map(|t| t.text.clone()).unwrap_or_default();
    let [AgentInput { chunks, question }] = inputs;
    Ok(Answered { source, question, chunks, memories: std::mem::take(&mut trace.memories), reply, answer: trace.answer, seconds: start.elapsed().as_secs_f64() })
}

fn chat(s: &Session, history: &[ChatMessage], params: &SamplingParams, cancel: &AtomicBool, send: &dyn Fn(Event)) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    let prompt = s.chat_prompt(history)?;
    let ids = s.encode_prompt(&prompt, true)?;
    let mut tokens = Vec::new();
    let out = s.generate_ids(&[ids], params, &mut |ev| {
        tokens.push(ev.token);
        if let Ok(text) = s.decode(&tokens) {
            send(Event::ChatText(text));
        }
        !cancel.load(Ordering::SeqCst)
    })?;
    let cancelled = out.first().is_some_and(|g| g.stop == crate::generate::StopReason::Cancelled);
    send(Event::ChatText(s.decode(&tokens)?));
    send(Event::ChatDone { tokens: tokens.len(), seconds: start.elapsed().as_secs_f64(), cancelled });
    Ok(())
}

/// Reads and analyses each file, one event per file; stops between files when cancelled.
fn load_documents(paths: &[PathBuf], preset: Preset, counter: &dyn TokenCounter, counter_name: &str, cancel: &AtomicBool, send: &dyn Fn(Event)) {
    send(Event::Busy("reading documents…".into()));
    let (files, list_errors) = crate::documents::list_files(paths);
    for e in list_errors {
        send(Event::DocFailed(e));
    }
    let opts = crate::documents::LoadOptions::default();
    let budget = Curriculum::preset(preset).chunk_tokens;
    let total = files.len();
    for (i, f) in files.iter().enumerate() {
        if cancel.load(Ordering::SeqCst) {
            send(Event::DocsDone { cancelled: true });
            return;
        }
        send(Event::DocProgress { done: i, total, current: f.clone() });
        match crate::documents::load_file(f, &opts) {
            Ok(doc) => send(Event::DocLoaded(Box::new(analyse(doc, budget, counter, counter_name)))),
            Err(e) => send(Event::DocFailed(e)),
        }
    }
    send(Event::DocsDone { cancelled: false });
}

/// Chunks, tokens and entities of one document (what the exercise builder will see).
pub fn analyse(doc: Document, chunk_tokens: usize, counter: &dyn TokenCounter, counter_name: &str) -> DocReport {
    let chunks = crate::documents::chunk::chunk_text(&doc.text, chunk_tokens, counter).len();
    let tokens = counter.count(&doc.text);
    let vocab = Vocab::from_text(&doc.text);
    let mut mentions = RuleTagger.tag(&doc.text, &vocab);
    mentions.sort_by_key(|m| (m.start, m.end));
    let groups = crate::exercises::entities::group(&doc.text, &mentions);
    let kinds = EntityKind::ALL
        .iter()
        .map(|k| (*k, groups.iter().filter(|g| g.kind == *k).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    let preview_end = preview_end(&doc.text);
    let preview_mentions = mentions.into_iter().filter(|m| m.end <= preview_end).collect();
    DocReport { chunks, tokens, counter: counter_name.to_string(), entities: groups.len(), kinds, preview_mentions, doc }
}

/// Byte offset where the preview of `text` ends (a char boundary).
pub fn preview_end(text: &str) -> usize {
    text.char_indices().nth(PREVIEW_CHARS).map_or(text.len(), |(i, _)| i)
}

impl DatasetView {
    /// The objective-2 probes of the exercise `id`.
    pub fn probes_of<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Exercise> + 'a {
        self.exercises.iter().filter(move |p| p.parent.as_deref() == Some(id))
    }
}

fn open_dataset(dir: &Path, summary: Option<DatasetSummary>) -> anyhow::Result<DatasetView> {
    let exercises = dataset::read_exercises(&dir.join(dataset::EXERCISES_FILE))?;
    Ok(DatasetView { dir: dir.to_path_buf(), summary, exercises })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::config::ModelSource;
    use crate::train::run_dir::RunDir;

    /// A new run takes the panel's model, steps, device and precision over the preset's; a
    /// resumed run keeps its saved precision and device and only raises its step counts.
    #[test]
    fn a_new_run_takes_the_panels_choices_and_a_resumed_run_keeps_its_own() {
        let dir = std::env::temp_dir().join(format!("memtrain-train-request-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let model = dir.join("my-model.gguf");
        let new = TrainRequest { data: dir.join("data"), out: dir.join("run"), model: Some(model.clone()), preset: "smollm2-135m".into(), sft_steps: 7, grpo_steps: 2, device: DeviceChoice::Wgpu, precision: Precision::MixedF16, resume: false };
        let cfg = new.config().unwrap();
        assert_eq!((cfg.precision, cfg.device, cfg.sft.steps, cfg.grpo_steps), (Precision::MixedF16, DeviceChoice::Wgpu, 7, 2));
        assert_eq!(cfg.model, ModelSource::Path(model));
        // Auto leaves the preset's device (scratch-cpu's is the CPU); F32 is taken as chosen.
        let auto = TrainRequest { preset: "scratch-cpu".into(), device: DeviceChoice::Auto, precision: Precision::F32, ..new.clone() }.config().unwrap();
        assert_eq!((auto.device, auto.precision), (DeviceChoice::Cpu, Precision::F32));
        // Mixed f16 is for GPU runs: a run on the CPU (chosen, or the preset's) computes in f32.
        for (preset, device) in [("scratch-cpu", DeviceChoice::Auto), ("smollm2-135m", DeviceChoice::Cpu)] {
            let cpu = TrainRequest { preset: preset.into(), device, ..new.clone() }.config().unwrap();
            assert_eq!((cpu.device, cpu.precision), (DeviceChoice::Cpu, Precision::F32), "{preset}");
        }
        // Resuming: the saved run's config, whatever the panel says now.
        let resume = TrainRequest { device: DeviceChoice::Cpu, precision: Precision::F32, sft_steps: 3, grpo_steps: 5, resume: true, ..new.clone() };
        let e = resume.config().unwrap_err().to_string();
        assert!(e.contains("holds no run") && e.contains(&new.out.display().to_string()), "{e}");
        std::fs::create_dir_all(&new.out).unwrap();
        RunDir::write_ron(&RunDir::new(&new.out).config(), &cfg).unwrap();
        let resumed = resume.config().unwrap();
        assert_eq!((resumed.precision, resumed.device, resumed.sft.steps, resumed.grpo_steps), (Precision::MixedF16, DeviceChoice::Wgpu, 7, 5));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
