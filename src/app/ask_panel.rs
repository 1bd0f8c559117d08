//! Ask: a question about a long document. The loaded model reads the document chunk by chunk
//! through the memory agent (greedy, on the worker, cancellable) and answers from its memory
//! alone; the memory appears as it is written, and afterwards each step can be revisited.

use super::memory_view::Reading;
use super::worker::{Answered, DocReport, ReadBudget, ReadProgress, Request, Worker};
use egui::RichText;

pub struct AskPanel {
    /// Index into the Documents panel's list; `None` reads the pasted text.
    pub document: Option<usize>,
    pub pasted: String,
    pub question: String,
    pub budget: ReadBudget,
    pub reading: Reading,
    /// The chunks being read (what the live view shows beside the memories).
    pub chunks: Vec<String>,
    pub answered: Option<Answered>,
}

impl Default for AskPanel {
    fn default() -> Self {
        AskPanel {
            document: None,
            pasted: String::new(),
            question: String::new(),
            budget: ReadBudget { chunk_tokens: 256, memory_tokens: 128, answer_tokens: 32 },
            reading: Reading::default(),
            chunks: vec![],
            answered: None,
        }
    }
}

impl AskPanel {
    pub fn on_answer(&mut self, a: Answered) {
        self.reading.finish(a.memories.len().saturating_sub(1), Some(format!("read {} chunks in {:.1} s", a.chunks.len(), a.seconds)));
        self.answered = Some(a);
    }

    /// Sends the document (or the pasted text) and the question to the worker, which chunks it
    /// with the model's tokenizer and sends the chunks back first (`on_chunks`).
    pub fn ask(&mut self, worker: &Worker, docs: &[DocReport]) {
        let (source, text) = match self.document.and_then(|i| docs.get(i)) {
            Some(r) => (r.doc.title.clone(), r.doc.text.clone()),
            None => ("the pasted text".to_string(), self.pasted.clone()),
        };
        self.chunks.clear();
        self.reading.begin(0);
        self.answered = None;
        worker.send(Request::Ask { source, text, question: self.question.trim().to_string(), agent: self.budget });
    }

    pub fn on_chunks(&mut self, chunks: Vec<String>) {
        self.reading.progress = Some(ReadProgress { turns: chunks.len() + 1, ..Default::default() });
        self.chunks = chunks;
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, worker: &Worker, docs: &[DocReport], model_ready: bool, busy: bool) {
        ui.heading("Ask a long document");
        if !model_ready {
            ui.label("Load a model in the Model tab first: it reads the document through its memory and answers from that memory alone.");
            return;
        };
        if self.document.is_some_and(|i| i >= docs.len()) {
            self.document = None;
        }
        let name = |i: Option<usize>| i.and_then(|i| docs.get(i)).map_or("pasted text".to_string(), |r| format!("{} ({} chars)", r.doc.title, r.doc.chars));
        ui.horizontal(|ui| {
            ui.label("Document");
            egui::ComboBox::from_id_salt("ask-doc").width(320.0).selected_text(name(self.document)).show_ui(ui, |ui| {
                ui.selectable_value(&mut self.document, None, "pasted text");
                for i in 0..docs.len() {
                    ui.selectable_value(&mut self.document, Some(i), name(Some(i)));
                }
            });
            ui.label("chunk tokens");
            ui.add(egui::DragValue::new(&mut self.budget.chunk_tokens).range(16..=8192));
            ui.label("memory tokens");
            ui.add(egui::DragValue::new(&mut self.budget.memory_tokens).range(4..=4096));
            ui.label("answer tokens");
            ui.add(egui::DragValue::new(&mut self.budget.answer_tokens).range(1..=512));
        });
        if self.document.is_none() {
            // A scroll area keeps a pasted book from pushing the question off the window.
            egui::ScrollArea::vertical().id_salt("ask-pasted").max_height(110.0).show(ui, |ui| {
                ui.add(egui::TextEdit::multiline(&mut self.pasted).hint_text("Paste a long text here, or drop files on the window and pick one above.").desired_rows(4).desired_width(f32::INFINITY));
            });
        }
        ui.horizontal(|ui| {
            ui.add(egui::TextEdit::singleline(&mut self.question).hint_text("Your question, e.g. Who rowed out to the stranded boats?").desired_width(520.0));
            let has_text = self.document.is_some() || !self.pasted.trim().is_empty();
            let ready = has_text && !self.question.trim().is_empty() && !busy && !self.reading.running;
            if !self.reading.running && ui.add_enabled(ready, egui::Button::new("Read and answer")).on_disabled_hover_text("pick a document (or paste text) and type a question").clicked() {
                self.ask(worker, docs);
            }
            if let Some(n) = &self.reading.note {
                ui.weak(n);
            }
        });
        ui.separator();
        if self.reading.running {
            self.reading.live(ui, worker, &self.chunks);
            return;
        }
        let Some(a) = &self.answered else {
            ui.weak("The answer and every memory the model wrote on the way appear here.");
            return;
        };
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(format!("Q: {}", a.question)).italics());
        });
        ui.horizontal_wrapped(|ui| {
            ui.strong("Answer:");
            ui.label(RichText::new(if a.answer.is_empty() { "(none)" } else { &a.answer }).size(18.0));
        });
        if a.reply != a.answer {
            ui.horizontal_wrapped(|ui| {
                ui.weak("Whole reply:");
                ui.label(&a.reply);
            });
        }
        let tracked: Vec<String> = if a.answer.trim().is_empty() { vec![] } else { vec![a.answer.clone()] };
        self.reading.review(ui, &a.chunks, &a.memories, &tracked);
    }
}
