//! Native Open dialogs (rfd). A dialog runs on its own thread, so the window keeps drawing while
//! it is open; what the user picks comes back through `poll` and is handled like a drop.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, channel};

/// What a dialog is for: the app routes the picked paths by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Documents,
    DocumentFolder,
    ModelFile,
    ModelFolder,
}

#[derive(Default)]
pub struct Dialogs {
    pending: Option<(Purpose, Receiver<Vec<PathBuf>>)>,
}

impl Dialogs {
    /// Whether a dialog is open (a second one waits).
    pub fn open(&self) -> bool {
        self.pending.is_some()
    }

    /// Opens the dialog for `purpose`; `ctx` is woken when it closes.
    pub fn show(&mut self, purpose: Purpose, ctx: &egui::Context) {
        if self.pending.is_some() {
            return;
        }
        let (tx, rx) = channel();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new().name("memtrain-dialog".into()).spawn(move || {
            let dialog = rfd::AsyncFileDialog::new();
            let picked: Vec<PathBuf> = pollster::block_on(async move {
                match purpose {
                    Purpose::Documents => dialog.set_title("Add documents").add_filter("Documents", crate::documents::Format::EXTENSIONS).pick_files().await.unwrap_or_default(),
                    Purpose::DocumentFolder => dialog.set_title("Add a folder of documents").pick_folders().await.unwrap_or_default(),
                    Purpose::ModelFile => dialog.set_title("Open a GGUF model").add_filter("GGUF model", &["gguf"]).pick_file().await.into_iter().collect(),
                    Purpose::ModelFolder => dialog.set_title("Open a Hugging Face model folder").pick_folder().await.into_iter().collect(),
                }
                .into_iter()
                .map(|h| h.path().to_path_buf())
                .collect()
            });
            let _ = tx.send(picked);
            ctx.request_repaint();
        });
        if spawned.is_ok() {
            self.pending = Some((purpose, rx));
        }
    }

    /// The paths of a dialog that has closed (empty when cancelled).
    pub fn poll(&mut self) -> Option<(Purpose, Vec<PathBuf>)> {
        let (purpose, rx) = self.pending.as_ref()?;
        let purpose = *purpose;
        let result = match rx.try_recv() {
            Ok(paths) => Some((purpose, paths)),
            Err(std::sync::mpsc::TryRecvError::Empty) => return None,
            // The dialog thread died (no portal, no display): nothing was picked.
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Some((purpose, vec![])),
        };
        self.pending = None;
        result
    }
}
