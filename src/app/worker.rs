//! The app's engine thread. Panels send `Request`s and read `Event`s; nothing heavy ever runs
//! on the UI thread, and every long task can be cancelled through the shared flag.

use crate::checkpoint::{ModelInfo, chat_template::ChatMessage};
use crate::device::{DeviceChoice, DeviceInfo};
use crate::generate::SamplingParams;
use crate::session::Session;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

pub enum Request {
    LoadModel { path: Option<PathBuf>, device: DeviceChoice },
    Chat { history: Vec<ChatMessage>, params: SamplingParams },
}

#[derive(Debug)]
pub enum Event {
    Busy(String),
    ModelLoaded { info: Box<ModelInfo>, device: DeviceInfo, seconds: f64 },
    /// Text generated so far for the current chat answer.
    ChatText(String),
    ChatDone { tokens: usize, seconds: f64, cancelled: bool },
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
    let send = |e: Event| {
        let _ = events.send(e);
        wake();
    };
    for req in requests {
        match req {
            Request::LoadModel { path, device } => {
                send(Event::Busy("loading model…".into()));
                let start = std::time::Instant::now();
                session = None; // free the old model first
                match Session::open(path.as_deref(), device) {
                    Ok(s) => {
                        send(Event::ModelLoaded {
                            info: Box::new(s.loaded.info.clone()),
                            device: s.device_info.clone(),
                            seconds: start.elapsed().as_secs_f64(),
                        });
                        session = Some(s);
                    }
                    Err(e) => send(Event::Error(format!("{e:#}"))),
                }
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
        }
    }
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
