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
    /// A folder to copy an evaluation report into.
    ExportReport,
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
                    Purpose::ExportReport => dialog.set_title("Export the report (JSON, CSV, PNG) to").pick_folder().await.into_iter().collect(),
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

/// Copies every file of `from` (an evaluation report folder) into `to`; returns how many.
pub fn copy_files(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<usize> {
    use anyhow::Context;
    let mut n = 0;
    for entry in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let path = entry?.path();
        if path.is_file() {
            let target = to.join(path.file_name().expect("a file has a name"));
            std::fs::copy(&path, &target).with_context(|| format!("cannot copy {} to {}", path.display(), target.display()))?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_copies_the_report_files_and_names_a_missing_folder() {
        let root = std::env::temp_dir().join(format!("memtrain-export-{}", std::process::id()));
        let (from, to) = (root.join("eval"), root.join("out"));
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::create_dir_all(&to).unwrap();
        std::fs::write(from.join("report.json"), "{}").unwrap();
        std::fs::write(from.join("scores.csv"), "a,b\n").unwrap();
        assert_eq!(copy_files(&from, &to).unwrap(), 2, "files only, not folders");
        assert_eq!(std::fs::read_to_string(to.join("scores.csv")).unwrap(), "a,b\n");
        let err = copy_files(&root.join("nope"), &to).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
