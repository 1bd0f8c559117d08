//! The app driven headless with egui_kittest: drop a sample document and see it listed with its
//! character count, generate tiny-preset exercises and see their count, cancel a long load.
//! No window and no model: the worker thread runs for real, so each test steps the harness
//! until the event it waits for has arrived (or a timeout says which one never came).

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use memtrain::app::state::Settings;
use memtrain::app::{StudioApp, Tab};
use memtrain::device::DeviceChoice;
use memtrain::model::precision::Precision;
use memtrain::exercises::dataset;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/samples")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("memtrain-app-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn harness(data_dir: PathBuf) -> Harness<'static, StudioApp> {
    Harness::builder()
        .with_size([1100.0, 760.0])
        .with_accessibility_check(false)
        .build_eframe(move |cc| StudioApp::with_settings(&cc.egui_ctx, Settings::default(), data_dir))
}

/// Steps the harness until `done` holds, failing after `secs` with `what`.
fn wait_for(h: &mut Harness<'_, StudioApp>, secs: u64, what: &str, done: impl Fn(&StudioApp) -> bool) {
    let start = Instant::now();
    loop {
        h.step();
        if done(h.state()) {
            h.step();
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out after {secs} s waiting for {what}; error: {:?}, busy: {:?}", h.state().error, h.state().busy);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A file dropped on the window, as winit would hand it to egui.
#[derive(Debug)]
struct TestDrop(PathBuf);

impl egui::DroppedFile for TestDrop {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// The first-run clicks: Documents → Add samples, then Exercises → Generate (tiny preset).
fn samples_to_exercises(h: &mut Harness<'_, StudioApp>) {
    h.get_by_label("Documents").click();
    h.step();
    h.get_by_label("Add samples").click();
    wait_for(h, 60, "the samples", |app| !app.documents.loading && app.documents.reports.len() + app.documents.errors.len() >= 6);
    h.state_mut().tab = Tab::Exercises;
    h.step();
    h.get_by_label("Generate").click();
    wait_for(h, 120, "the exercises", |app| app.exercises.view.is_some());
}

fn has_label(h: &Harness<'_, StudioApp>, text: &str) -> bool {
    h.query_all_by_label(text).next().is_some()
}

#[test]
fn dropped_sample_document_is_listed_with_its_character_count() {
    let mut h = harness(scratch("drop"));
    h.step();
    assert!(h.query_by_label_contains("No documents yet").is_some(), "the empty state guides a first-time user");
    let file = samples().join("harbour-town-chronicle.md");
    let expected = memtrain::documents::load_path(&file).remove(0).unwrap().chars;
    h.input_mut().dropped_files.push(Arc::new(TestDrop(file)));
    wait_for(&mut h, 30, "the dropped document", |app| !app.documents.loading && !app.documents.reports.is_empty());
    assert_eq!(h.state().tab, Tab::Documents);
    assert!(has_label(&h, "harbour-town-chronicle.md"), "the file is listed by name");
    assert!(has_label(&h, &expected.to_string()), "the list shows its {expected} characters");
    let r = &h.state().documents.reports[0];
    assert!(r.entities > 0 && r.chunks > 0 && r.tokens > 0, "entities, chunks and tokens are counted");
    assert!(!r.preview_mentions.is_empty(), "the preview has entities to highlight");
}

#[test]
fn samples_give_tiny_exercises_whose_count_is_shown() {
    let data = scratch("exercises");
    let mut h = harness(data.clone());
    h.step();
    h.get_by_label("Add samples").click();
    wait_for(&mut h, 60, "the six samples", |app| !app.documents.loading && app.documents.reports.len() + app.documents.errors.len() >= 6);
    assert_eq!(h.state().documents.reports.len(), 6, "every sample reads: {:?}", h.state().documents.errors);

    h.state_mut().tab = Tab::Exercises;
    h.step();
    assert!(h.query_by_label_contains("documents are ready").is_some(), "the empty state says what to do next");
    assert_eq!(h.state().settings.preset, memtrain::exercises::curriculum::Preset::Tiny);
    h.get_by_label("Generate").click();
    wait_for(&mut h, 120, "the exercises", |app| app.exercises.view.is_some());

    let out = data.join("datasets").join("tiny-seed0");
    let written = dataset::read_exercises(&out.join(dataset::EXERCISES_FILE)).unwrap();
    assert!(!written.is_empty());
    assert_eq!(h.state().exercises.view.as_ref().unwrap().exercises.len(), written.len());
    let summary = format!("{} exercises (", written.len());
    assert!(h.query_by_label_contains(&summary).is_some(), "the panel shows the count {}", written.len());
    assert!(h.query_by_label_contains("Chunk 1 of").is_some(), "the first exercise is shown chunk by chunk");
}

#[test]
fn cancel_stops_a_long_document_load() {
    let dir = scratch("cancel");
    let docs = dir.join("many");
    std::fs::create_dir_all(&docs).unwrap();
    let para = "Captain Mary Holloway sailed from Port Elias to Grey Harbour in March 1887 with 42 crew. ";
    for i in 0..3000 {
        std::fs::write(docs.join(format!("note-{i:04}.txt")), format!("Note {i}.\n\n{}", para.repeat(40))).unwrap();
    }
    let mut h = harness(dir.join("data"));
    h.step();
    h.state_mut().drop_paths(vec![docs]);
    wait_for(&mut h, 30, "the load to start", |app| app.documents.progress.as_ref().is_some_and(|p| p.0 > 0));
    h.get_by_label("Cancel").click();
    wait_for(&mut h, 30, "the load to stop", |app| !app.documents.loading);
    let app = h.state();
    assert!(app.documents.reports.len() < 3000, "cancel stopped the load ({} files read)", app.documents.reports.len());
    assert!(app.documents.note.as_deref().is_some_and(|n| n.starts_with("Stopped after")));
    assert!(app.busy.is_none(), "the app is idle again");
}

#[test]
fn a_dropped_model_folder_goes_to_the_model_panel_not_documents() {
    let dir = scratch("model-drop");
    let model = dir.join("not-really-a-model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), "{}").unwrap();
    let mut h = harness(dir.join("data"));
    h.step();
    h.state_mut().drop_paths(vec![model]);
    assert_eq!(h.state().tab, Tab::Model);
    assert!(!h.state().documents.loading, "a model folder is not read as documents");
    wait_for(&mut h, 60, "the load error", |app| app.error.is_some());
}

/// Exercises from the samples, then the Train tab: a short run from a preset streams its
/// steps and held-out evaluations into the panel and leaves a trained model in the run folder.
/// Needs the default model's tokenizer (CI fetches the model); skipped without it.
#[test]
fn train_tab_runs_a_short_training_and_charts_it() {
    if memtrain::checkpoint::default_model::resolve(None).is_err() {
        assert!(std::env::var_os("MEMTRAIN_REQUIRE_MODEL").is_none(), "MEMTRAIN_REQUIRE_MODEL is set but the default model is missing");
        eprintln!("skipped: the tiny preset borrows the default model's tokenizer, which is not installed");
        return;
    }
    let data = scratch("train");
    let mut h = harness(data.clone());
    h.step();
    h.state_mut().tab = Tab::Train;
    h.step();
    assert!(h.query_by_label_contains("Generate or open a dataset").is_some(), "the empty state says what to do first");
    samples_to_exercises(&mut h);

    h.state_mut().tab = Tab::Train;
    h.step();
    // Precision is offered for GPU runs (tiny-cpu under Auto may find one) and kept as a
    // setting; not for a run on the CPU (chosen, or the preset's), which computes in f32
    // whatever the setting says.
    h.get_by_label("mixed f16").click();
    h.step();
    assert_eq!(h.state().settings.train_precision, Precision::MixedF16);
    h.state_mut().settings.device = DeviceChoice::Cpu;
    h.step();
    assert!(!has_label(&h, "mixed f16"), "the CPU path is f32 only");
    h.state_mut().settings.device = DeviceChoice::Auto;
    // The from-scratch preset (its device: the CPU): the same panel and worker path as
    // tiny-cpu, in seconds per step.
    h.state_mut().train.preset = "scratch-cpu".into();
    h.state_mut().train.sft_steps = 3;
    h.state_mut().train.grpo_steps = 1;
    h.step();
    assert!(!has_label(&h, "mixed f16"), "scratch-cpu runs on the CPU");
    h.get_by_label("Start training").click();
    wait_for(&mut h, 600, "the end of training", |app| !app.train.running && app.train.note.is_some());
    let app = h.state();
    assert!(app.train.note.as_deref().unwrap().starts_with("finished"), "{:?}", app.train.note);
    assert_eq!(app.train.steps.len(), 4, "one record per step reached the panel");
    assert_eq!(app.train.evals.first().map(|e| e.step), Some(0), "the baseline evaluation is charted");
    let run = app.train.run_dir.clone().unwrap();
    let config = memtrain::train::TrainConfig::load(&run.join("config.ron")).unwrap();
    assert_eq!((config.device, config.precision), (DeviceChoice::Cpu, Precision::F32));
    assert!(run.join("final/model.safetensors").exists() && run.join("metrics.jsonl").exists());
    assert!(h.query_by_label_contains("step 4/4").is_some(), "the progress bar shows the last step");

    // Evaluate: the untrained start against the trained result, on held-out exercises.
    h.get_by_label("Evaluate").click();
    h.state_mut().evaluate.limit = 2;
    h.state_mut().evaluate.max_distance = 1;
    h.step();
    assert!(h.query_by_label_contains("No comparison yet").is_some(), "the empty state comes before the first comparison");
    h.get_by_label("Compare").click();
    wait_for(&mut h, 300, "the comparison", |app| !app.evaluate.running);
    let app = h.state();
    assert!(app.error.is_none(), "{:?}", app.error);
    let report = app.evaluate.report.clone().expect("a report reached the panel");
    assert_eq!(report.baseline.masked.exact_match.n, 2);
    assert!(report.gains.is_some() && run.join("eval/report.json").exists() && run.join("eval/recall_by_distance.png").exists());
    assert!(h.query_by_label_contains("gain (paired)").is_some(), "the gain row is shown");
    assert!(h.query_by_label_contains("obj. 1 from the teacher's memory").is_some(), "the answer turn's own score is shown");
}

/// The default model dropped on the window and loaded, or `None` (skipped) when it is not
/// installed.
fn with_default_model(name: &str) -> Option<(Harness<'static, StudioApp>, PathBuf)> {
    let Ok(model) = memtrain::checkpoint::default_model::resolve(None) else {
        assert!(std::env::var_os("MEMTRAIN_REQUIRE_MODEL").is_none(), "MEMTRAIN_REQUIRE_MODEL is set but the default model is missing");
        eprintln!("skipped: the default model is not installed");
        return None;
    };
    let data = scratch(name);
    let mut h = harness(data.clone());
    h.step();
    h.state_mut().drop_paths(vec![model]);
    wait_for(&mut h, 120, "the model", |app| app.model.loaded.is_some());
    Some((h, data))
}

/// Inspector: the loaded model reads a held-out exercise of the samples; the panel shows the
/// chunk beside the memory written after it, steps forward, and lists the answer and the recall
/// questions with their scores.
#[test]
fn inspector_steps_through_a_rollout_chunk_by_chunk() {
    let Some((mut h, _)) = with_default_model("inspect") else { return };
    h.state_mut().tab = Tab::Inspector;
    h.step();
    assert!(h.query_by_label_contains("Generate or open a dataset").is_some(), "the empty state says what to do first");
    samples_to_exercises(&mut h);

    h.get_by_label("Inspector").click();
    h.state_mut().inspector.memory_tokens = 12;
    h.state_mut().inspector.answer_tokens = 6;
    h.state_mut().inspector.max_distance = 1;
    h.step();
    h.get_by_label("Read").click();
    wait_for(&mut h, 300, "the inspection", |app| !app.inspector.reading.running);
    let app = h.state();
    assert!(app.error.is_none(), "{:?}", app.error);
    let r = app.inspector.result.clone().expect("the rollout reached the panel");
    let view = app.exercises.view.as_ref().unwrap();
    let probes = view.exercises.iter().filter(|p| p.parent.as_deref() == Some(r.exercise.id.as_str())).count();
    assert_eq!(r.exercise.split, dataset::HELD_OUT, "held-out exercises come first");
    assert_eq!(r.trace.memories.len(), r.exercise.chunks.len(), "one memory per chunk read");
    assert_eq!(r.records.iter().filter(|x| x.distance.is_none()).count(), 1, "the final answer is scored once");
    assert!(r.records.len() > probes, "every probe is asked at distance 0 (and 1 where the document goes on)");
    assert!(has_label(&h, "Chunk 1 read") && h.query_by_label_contains("Memory after chunk 1").is_some());
    h.get_by_label("Next chunk >").click();
    h.step();
    assert_eq!(h.state().inspector.reading.step, 1);
    assert!(has_label(&h, "Chunk 2 read"), "the stepper moved to the second chunk");
    assert!(h.query_by_label_contains("in the memory after chunk").is_some(), "tracked entities are followed through the memories");
}

/// Reads `text` for `question` in the Ask panel (20-token chunks, 12-token memory, 6-token
/// answer) and waits until the reading ends.
fn ask_with_a_tiny_budget(h: &mut Harness<'_, StudioApp>, text: &str, question: &str) {
    h.get_by_label("Ask").click();
    h.step();
    {
        let ask = &mut h.state_mut().ask;
        ask.pasted = text.into();
        ask.question = question.into();
        ask.budget = memtrain::app::worker::ReadBudget { chunk_tokens: 20, memory_tokens: 12, answer_tokens: 6 };
    }
    h.step();
    h.get_by_label("Read and answer").click();
    wait_for(h, 300, "the answer", |app| !app.ask.reading.running);
}

/// Ask: pasted text read through the memory agent gives one memory per chunk and an answer; a
/// long reading stops on Stop without an answer, and the app is idle again.
#[test]
fn ask_answers_from_memory_and_stop_cancels_a_long_reading() {
    let Some((mut h, _)) = with_default_model("ask") else { return };
    let text = "Marta Corrigan rowed out to the stranded boats when the storm came.\n\nThe new school in Morton Bay opened in May 1971 after weeks of argument.";
    ask_with_a_tiny_budget(&mut h, text, "Who rowed out to the boats?");
    let app = h.state();
    assert!(app.error.is_none(), "{:?}", app.error);
    let a = app.ask.answered.clone().expect("an answer reached the panel");
    assert!(a.chunks.len() >= 2, "the text was cut into {} chunk(s)", a.chunks.len());
    assert_eq!(a.memories.len(), a.chunks.len(), "one memory per chunk");
    assert!(h.query_by_label_contains("Answer:").is_some());

    let long = std::fs::read_to_string(samples().join("harbour-town-chronicle.md")).unwrap().repeat(4);
    h.state_mut().ask.pasted = long;
    h.state_mut().ask.budget = memtrain::app::worker::ReadBudget { chunk_tokens: 64, memory_tokens: 64, answer_tokens: 16 };
    h.step();
    h.get_by_label("Read and answer").click();
    wait_for(&mut h, 120, "the reading to start", |app| app.ask.reading.progress.as_ref().is_some_and(|p| !p.memories.is_empty() && p.turns > 4));
    h.get_by_label("Stop").click();
    wait_for(&mut h, 60, "the reading to stop", |app| !app.ask.reading.running);
    let app = h.state();
    assert!(app.ask.answered.is_none(), "a stopped reading gives no answer");
    assert_eq!(app.ask.reading.note.as_deref(), Some("reading stopped"));
    assert!(app.busy.is_none() && app.error.is_none(), "the app is idle again: {:?}", app.error);
}

/// The Model panel's f16 box: on the CPU the model loads with f16 decode weights (the panel
/// says so), and the memory agent still reads and answers with them.
#[test]
fn f16_decode_weights_box_loads_the_cpu_model_with_f16_weights_and_it_answers() {
    let Ok(model) = memtrain::checkpoint::default_model::resolve(None) else {
        assert!(std::env::var_os("MEMTRAIN_REQUIRE_MODEL").is_none(), "MEMTRAIN_REQUIRE_MODEL is set but the default model is missing");
        return;
    };
    let mut h = harness(scratch("f16-panels"));
    h.step();
    h.state_mut().settings.device = DeviceChoice::Cpu;
    h.state_mut().tab = Tab::Model;
    h.step();
    h.get_by_label_contains("f16 decode weights").click();
    h.step();
    assert!(h.state().settings.cpu_f16_panels, "the box sets the setting");
    h.state_mut().drop_paths(vec![model]);
    wait_for(&mut h, 120, "the model", |app| app.model.load_note.as_deref().is_some_and(|n| n.contains("f16")));
    assert_eq!(h.state().model.load_note.as_deref().map(|n| n.ends_with("decoding with f16 weights")), Some(true));
    ask_with_a_tiny_budget(&mut h, "Marta Corrigan rowed out to the stranded boats when the storm came.", "Who rowed out to the boats?");
    assert!(h.state().error.is_none(), "{:?}", h.state().error);
    assert!(h.state().ask.answered.is_some(), "an answer reached the panel");
}
