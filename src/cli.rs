//! Command-line interface: parsing and calling, no logic of its own. Without a subcommand the
//! desktop app opens. Generated text goes to stdout; diagnostics go to stderr.

use crate::checkpoint::{self, chat_template::ChatMessage};
use crate::device::DeviceChoice;
use crate::generate::SamplingParams;
use crate::session::Session;
use crate::train::TrainConfig;
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "memtrain", version, about = "MemTrain Studio: teach small language models to remember what they read")]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The devices training and generation can run on: the CPU and every wgpu adapter.
    Devices,
    /// Architecture, parameter count, tensor types, vocabulary, context length, chat template.
    Info {
        /// A .gguf file or a Hugging Face folder (default: the default model).
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Generate text; only the generated text goes to stdout.
    Generate {
        #[arg(long)]
        model: Option<PathBuf>,
        /// Raw prompt (BOS added if the model wants it).
        #[arg(long, conflicts_with = "chat", required_unless_present = "chat")]
        prompt: Option<String>,
        /// One user message, wrapped with the model's chat template.
        #[arg(long)]
        chat: Option<String>,
        #[arg(long, default_value_t = 128)]
        max_tokens: usize,
        /// 0 is greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        #[arg(long, default_value_t = 1.0)]
        top_p: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// auto, wgpu, cpu or adapter:N (`memtrain devices` lists N)
        #[arg(long, default_value_t = DeviceChoice::Auto)]
        device: DeviceChoice,
        /// Half precision: on wgpu the whole model in f16 (half the memory and bandwidth); on the
        /// CPU the decode kernels' weight copy in f16 (faster decoding of few sequences).
        #[arg(long)]
        f16: bool,
    },
    /// Turn documents (files or folders: txt, md, html, pdf, docx, epub) into memory exercises.
    Exercises {
        /// Files or folders, read recursively.
        #[arg(long, num_args = 1.., required = true)]
        docs: Vec<PathBuf>,
        /// Output folder: exercises.jsonl and manifest.ron.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "small", value_parser = ["tiny", "small", "paper"])]
        preset: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Count tokens with this model's tokenizer (default: the default model when installed,
        /// else an approximate counter).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Objective 1's [MASK]: `everywhere` (the paper's) or `after-pivot` (the entity stays
        /// readable where it is first seen and is masked later: a memory test for small models).
        #[arg(long, default_value = "everywhere")]
        mask: crate::exercises::MaskScope,
    },
    /// Write seeded synthetic documents with known entities.
    SynthDocs {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 20)]
        count: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Run the memory agent on one document: the answer on stdout, the memory after each chunk on stderr.
    Agent {
        #[arg(long)]
        model: Option<PathBuf>,
        /// A document (txt, md, html, pdf, docx, epub).
        #[arg(long)]
        doc: PathBuf,
        #[arg(long)]
        question: String,
        #[arg(long, default_value_t = 384)]
        chunk_tokens: usize,
        #[arg(long, default_value_t = 192)]
        memory_tokens: usize,
        #[arg(long, default_value_t = 32)]
        answer_tokens: usize,
        /// auto, wgpu, cpu or adapter:N (`memtrain devices` lists N)
        #[arg(long, default_value_t = DeviceChoice::Auto)]
        device: DeviceChoice,
        /// Half precision: on wgpu the whole model in f16 (half the memory and bandwidth); on the
        /// CPU the decode kernels' weight copy in f16 (faster decoding of few sequences).
        #[arg(long)]
        f16: bool,
    },
    /// Train the memory agent on an exercises folder (SFT warm start, then GRPO).
    Train {
        /// Folder with exercises.jsonl (from `memtrain exercises`).
        #[arg(long)]
        data: PathBuf,
        /// Run folder: metrics.jsonl, eval.jsonl, checkpoints/, initial/, final/.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "tiny-cpu", conflicts_with = "config")]
        preset: String,
        /// A RON training config (see `memtrain train-config --preset NAME`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// GRPO steps (after the SFT warm start); overrides the config.
        #[arg(long)]
        steps: Option<usize>,
        /// SFT warm-start steps; overrides the config.
        #[arg(long)]
        sft_steps: Option<usize>,
        /// auto, wgpu, cpu or adapter:N; overrides the config.
        #[arg(long)]
        device: Option<DeviceChoice>,
        /// Continue the run in --out from its newest checkpoint.
        #[arg(long)]
        resume: bool,
    },
    /// Greedy held-out evaluation: masked-entity and recall EM/F1, and the teacher-trace NLL.
    Eval {
        /// A model (a run's final/ or initial/, a GGUF, an HF folder; default: the default model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Folder with exercises.jsonl.
        #[arg(long)]
        data: PathBuf,
        /// Held-out exercises to use (0 = all).
        #[arg(long, default_value_t = 32)]
        limit: usize,
        /// Memory budget (default: the run's own when --model is a run's final/ or initial/,
        /// else the tiny-cpu preset's, what the app trains with).
        #[arg(long)]
        memory_tokens: Option<usize>,
        /// Answer budget; recall replies restore a sentence (default: as --memory-tokens).
        #[arg(long)]
        answer_tokens: Option<usize>,
        /// auto, wgpu, cpu or adapter:N (`memtrain devices` lists N)
        #[arg(long, default_value_t = DeviceChoice::Auto)]
        device: DeviceChoice,
        /// Write the result as JSON here too.
        #[arg(long)]
        json: Option<PathBuf>,
        /// A trained model to compare against --model (the baseline, e.g. RUN/initial vs RUN/final).
        #[arg(long)]
        compare: Option<PathBuf>,
        /// Write report.json, scores.csv, per-exercise records and PNG charts here (recall is
        /// then asked at every distance up to --max-distance).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 3)]
        max_distance: usize,
        /// The teacher memory objective 1 is also answered from (the answer turn's skill alone;
        /// default: as --memory-tokens, the `sft.memory_style` the run was trained with).
        #[arg(long, value_enum)]
        teacher_memory: Option<crate::train::config::MemoryStyle>,
        /// Greedy turns never repeat an n-gram of this many of their own tokens, 0 = off
        /// (default: as --memory-tokens, `agent.no_repeat_ngram`).
        #[arg(long)]
        no_repeat_ngram: Option<usize>,
    },
    /// Print a preset's training config as RON, to edit and pass with --config.
    TrainConfig {
        #[arg(long, default_value = "tiny-cpu")]
        preset: String,
    },
    /// Export a run's trained model (or any model) as a Hugging Face folder or GGUF.
    Export {
        /// A run folder, an HF folder or a GGUF file.
        #[arg(long)]
        from: PathBuf,
        #[arg(long, value_enum)]
        format: checkpoint::export::ExportFormat,
        #[arg(long)]
        out: PathBuf,
    },
    /// Download the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) into the user's model folder.
    FetchModel,
    /// Throughput benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Exercise building throughput (MB/s, peak memory) on synthetic text.
    Exercises {
        #[arg(long, default_value_t = 100)]
        megabytes: usize,
        #[arg(long, default_value = "small", value_parser = ["tiny", "small", "paper"])]
        preset: String,
    },
    /// One GRPO step of the memory agent, timed by phase (generation, rewards, forward-backward, optimizer).
    Train {
        /// A model, or random:smollm2-135m or random:smollm2-360m (default: the default model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Tokenizer for a random model (default: the default model's).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// auto, wgpu, cpu or adapter:N (`memtrain devices` lists N)
        #[arg(long, default_value_t = DeviceChoice::Auto)]
        device: DeviceChoice,
        #[arg(long, default_value_t = 4)]
        docs: usize,
        #[arg(long, default_value_t = 8)]
        group: usize,
        #[arg(long, default_value_t = 4)]
        recall_group: usize,
        #[arg(long, default_value_t = 64)]
        memory_tokens: usize,
        #[arg(long, default_value_t = 16)]
        answer_tokens: usize,
        #[arg(long, default_value_t = 16)]
        micro_batch: usize,
        /// Write the update's token batch as JSON (for scripts/bench_train_torch.py).
        #[arg(long)]
        dump_batch: Option<PathBuf>,
        /// Time the second of two identical steps (compilation and autotuning excluded).
        #[arg(long)]
        warmup: bool,
        /// Train only the top N layers (a run config's `trainable_layers`).
        #[arg(long, conflicts_with = "lora")]
        trainable_layers: Option<usize>,
        /// Train rank-R LoRA adapters on every projection instead of the weights.
        #[arg(long, value_name = "R")]
        lora: Option<usize>,
        /// Recompute each layer in the backward pass, keeping only layer inputs (less memory, one
        /// more forward).
        #[arg(long)]
        checkpointing: bool,
        /// Mixed precision (a run config's `precision: MixedF16`): matmuls in f16, weights and
        /// AdamW in f32 (wgpu devices only).
        #[arg(long)]
        f16: bool,
        /// Compute every copy of a prompt that rows of a micro-batch share, as before shared
        /// prompts (same loss and gradients; for timing the difference).
        #[arg(long)]
        no_shared_prompts: bool,
        /// With --trainable-layers: run the frozen layers again in the update instead of starting
        /// from their output kept by the rollouts (to time the difference).
        #[arg(long)]
        no_stem_reuse: bool,
        /// Prefill every prompt whole in generation instead of their common leading tokens once
        /// (to time the difference).
        #[arg(long)]
        no_shared_prefix: bool,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The whole issue-7 suite: generation at several batches, training steps at several
    /// sequence lengths, a GRPO step by phase, on each device, with the peers side by side.
    Suite {
        /// A model, or random:smollm2-135m or random:smollm2-360m (default: the default model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Tokenizer for the GRPO step of a random model (default: the default model's).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Devices to measure, comma-separated (cpu, wgpu).
        #[arg(long, value_delimiter = ',', default_value = "cpu,wgpu")]
        devices: Vec<DeviceChoice>,
        #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
        batches: Vec<usize>,
        #[arg(long, default_value_t = 128)]
        prompt_tokens: usize,
        #[arg(long, default_value_t = 64)]
        decode_tokens: usize,
        /// Training-step sequence lengths.
        #[arg(long, value_delimiter = ',', default_value = "512,2048")]
        train_seqs: Vec<usize>,
        /// Skip the GRPO step.
        #[arg(long)]
        no_grpo: bool,
        /// Also time each training step with layer recomputation (memory vs compute).
        #[arg(long)]
        checkpointing: bool,
        /// Also measure generation in f16 (a child process per batch) and training steps in mixed
        /// f16 on each wgpu device, and generation with f16 decode panels on the CPU.
        #[arg(long)]
        f16: bool,
        /// Measure the CPU training rows this many times; after the first, ours and PyTorch's
        /// alternate and the target line gives the median of the per-round ratios.
        #[arg(long, default_value_t = 1)]
        train_rounds: usize,
        /// Peer script (PyTorch, llama.cpp); `none` skips the peers.
        #[arg(long, default_value = "scripts/bench_peers.py")]
        peers: PathBuf,
        /// Python that runs the peer script.
        #[arg(long, default_value = "python3")]
        python: String,
        /// GGUF for llama.cpp and PyTorch (default: the default model when installed).
        #[arg(long)]
        peer_gguf: Option<PathBuf>,
        /// Write the whole report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the Markdown tables.
        #[arg(long)]
        markdown: Option<PathBuf>,
    },
    /// Prefill and decode tokens/s.
    Generate {
        #[arg(long)]
        model: Option<PathBuf>,
        /// auto, wgpu, cpu or adapter:N (`memtrain devices` lists N)
        #[arg(long, default_value_t = DeviceChoice::Auto)]
        device: DeviceChoice,
        /// Half precision: on wgpu the whole model in f16 (half the memory and bandwidth); on the
        /// CPU the decode kernels' weight copy in f16 (faster decoding of few sequences).
        #[arg(long)]
        f16: bool,
        /// Sequences decoded together.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Prompt length in tokens.
        #[arg(long, default_value_t = 128)]
        prompt_tokens: usize,
        /// Tokens decoded per sequence.
        #[arg(long, default_value_t = 64)]
        decode_tokens: usize,
        /// 0 decodes greedily; above 0 samples as GRPO's rollouts do (temperature 1): on wgpu in
        /// our sampling kernel, on the CPU on the host.
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        /// Sample only from the k most likely tokens (0: off; with --temperature above 0).
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        /// Sample only from the smallest set of tokens holding this much probability (1: off).
        #[arg(long, default_value_t = 1.0)]
        top_p: f32,
        /// Write the result as JSON here too.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => crate::app::run(),
        Some(cmd) => run_command(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_command(cmd: Command) -> Result<()> {
    match cmd {
        Command::Devices => {
            let (_, cpu) = crate::device::cpu();
            println!("cpu        {cpu}");
            for a in crate::device::adapters() {
                println!("adapter:{:<2} {}", a.index, a.info);
            }
            if crate::device::adapters().is_empty() {
                println!("(no wgpu adapter: install a Vulkan, Metal or DX12 driver for GPU training)");
            }
            Ok(())
        }
        Command::Info { model } => info(model),
        Command::Generate { model, prompt, chat, max_tokens, temperature, top_k, top_p, seed, device, f16 } => {
            let session = Session::open_with(model.as_deref(), device, f16)?;
            eprintln!("model: {} on {}", session.loaded.info.name, session.device_info);
            let (text, is_chat) = match (prompt, chat) {
                (Some(p), _) => (p, false),
                (None, Some(c)) => (session.chat_prompt(&[ChatMessage { role: "user".into(), content: c }])?, true),
                (None, None) => unreachable!("clap requires one of --prompt/--chat"),
            };
            let ids = session.encode_prompt(&text, is_chat)?;
            let params = SamplingParams { temperature, top_k, top_p, seed, max_new_tokens: max_tokens, no_repeat_ngram: 0 };
            let mut stdout = std::io::stdout();
            let mut shown = String::new();
            let mut tokens = Vec::new();
            session.generate_ids(&[ids], &params, &mut |ev| {
                // Decode the whole tail each time: a token can end in the middle of a UTF-8 char.
                tokens.push(ev.token);
                if let Ok(text) = session.decode(&tokens) {
                    if text.len() > shown.len() && text.starts_with(&shown) && !text.ends_with('\u{FFFD}') {
                        let _ = write!(stdout, "{}", &text[shown.len()..]);
                        let _ = stdout.flush();
                        shown = text;
                    }
                }
                true
            })?;
            let full = session.decode(&tokens)?;
            if full.len() > shown.len() && full.starts_with(&shown) {
                write!(stdout, "{}", &full[shown.len()..])?;
            }
            writeln!(stdout)?;
            Ok(())
        }
        Command::Exercises { docs, out, preset, seed, model, mask } => exercises(docs, out, &preset, seed, model, mask),
        Command::SynthDocs { out, count, seed } => {
            let files = crate::exercises::synth::write_documents(&out, count, seed)?;
            eprintln!("wrote {} documents to {}", files.len(), out.display());
            Ok(())
        }
        Command::Bench { what: BenchCommand::Exercises { megabytes, preset } } => {
            let opts = crate::exercises::bench::BenchOptions { megabytes, preset: preset.parse()?, ..Default::default() };
            println!("{}", crate::exercises::bench::bench(&opts)?.report());
            Ok(())
        }
        Command::Agent { model, doc, question, chunk_tokens, memory_tokens, answer_tokens, device, f16 } => agent(model, &doc, &question, chunk_tokens, memory_tokens, answer_tokens, device, f16),
        Command::Train { data, out, preset, config, steps, sft_steps, device, resume } => train(&data, &out, &preset, config, steps, sft_steps, device, resume),
        Command::Eval { model, data, limit, memory_tokens, answer_tokens, device, json: _, compare, out: Some(out), max_distance, teacher_memory, no_repeat_ngram } => {
            let cfg = eval_config(compare.as_deref().or(model.as_deref()), memory_tokens, answer_tokens, teacher_memory, no_repeat_ngram);
            let options = crate::eval::report::CompareOptions::from_config(&cfg, limit, max_distance);
            let r = crate::eval::report::compare(model.as_deref(), compare.as_deref(), &data, &out, options, device, &mut |m| eprintln!("eval: {m}"), &|| true)?;
            for m in std::iter::once(&r.baseline).chain(&r.trained) {
                let t = &m.masked_from_teacher_memory.exact_match;
                println!("{}: masked EM {:.3} (n={}) | from the teacher's memory {:.3} (n={}) | recall EM {:.3} (n={})", m.model, m.masked.exact_match, m.masked.exact_match.n, t, t.n, m.recall.exact_match, m.recall.exact_match.n);
            }
            if let Some(g) = &r.gains {
                println!("gain (paired, 95% CI): masked EM {:+.3} | from the teacher's memory {:+.3} | recall EM {:+.3}", g.masked_exact_match, g.masked_from_teacher_memory_exact_match, g.recall_exact_match);
            }
            eprintln!("report written to {}", out.display());
            Ok(())
        }
        Command::Eval { compare: Some(_), out: None, .. } => anyhow::bail!("--compare needs --out DIR (the comparison is written as a report)"),
        Command::Eval { model, data, limit, memory_tokens, answer_tokens, device, json, teacher_memory, no_repeat_ngram, .. } => {
            let cfg = eval_config(model.as_deref(), memory_tokens, answer_tokens, teacher_memory, no_repeat_ngram);
            let params = crate::eval::greedy(cfg.agent.memory_tokens, cfg.agent.answer_tokens, cfg.agent.no_repeat_ngram);
            let teacher = crate::train::reference::TeacherStyle::from_config(&cfg.sft);
            let e = crate::eval::evaluate_model(model.as_deref(), &data, limit, &params, teacher, device)?;
            println!("{}", e.summary_line());
            write_json(json, &e)?;
            Ok(())
        }
        Command::TrainConfig { preset } => {
            print!("{}", crate::train::TrainConfig::preset(&preset)?.to_ron());
            Ok(())
        }
        Command::Export { from, format, out } => {
            checkpoint::export::export(&from, format, &out)?;
            eprintln!("exported {} to {}", from.display(), out.display());
            Ok(())
        }
        Command::FetchModel => {
            let path = checkpoint::default_model::fetch()?;
            println!("{}", path.display());
            Ok(())
        }
        Command::Bench { what: BenchCommand::Train { model, tokenizer, device, docs, group, recall_group, memory_tokens, answer_tokens, micro_batch, dump_batch, warmup, trainable_layers, lora, checkpointing, f16, no_shared_prompts, no_stem_reuse, no_shared_prefix, json } } => {
            use crate::bench::train::Learning;
            let learning = match (trainable_layers, lora) {
                (Some(n), _) => Learning::TopLayers(n),
                (_, Some(r)) if r > 0 => Learning::Lora(r),
                (_, Some(_)) => bail!("--lora 0: a LoRA rank must be at least 1"),
                _ => Learning::Full,
            };
            let precision = if f16 { crate::model::precision::Precision::MixedF16 } else { crate::model::precision::Precision::F32 };
            let opts = crate::bench::train::TrainBenchOptions { model, tokenizer, device, docs, group, recall_group, memory_tokens, answer_tokens, micro_batch, dump_batch, warmup, learning, checkpointing, precision, share_prompts: !no_shared_prompts, reuse_stems: !no_stem_reuse, share_prefix: !no_shared_prefix };
            let report = crate::bench::train::train_step(&opts)?;
            println!("{}", report.text());
            write_json(json, &report)?;
            Ok(())
        }
        Command::Bench { what: BenchCommand::Suite { model, tokenizer, devices, batches, prompt_tokens, decode_tokens, train_seqs, no_grpo, checkpointing, f16, train_rounds, peers, python, peer_gguf, json, markdown } } => {
            let peers = (peers.as_os_str() != "none").then_some(peers);
            let opts = crate::bench::suite::SuiteOptions { model, tokenizer, devices, batches, prompt_tokens, decode_tokens, train_seqs, grpo: !no_grpo, checkpointing, peers, python, peer_gguf, train_rounds: train_rounds.max(1), f16 };
            let report = crate::bench::suite::run(&opts, &mut |what| eprintln!("bench suite: {what}"))?;
            let md = report.markdown();
            println!("{md}");
            write_json(json, &report)?;
            if let Some(p) = markdown {
                std::fs::write(&p, md).with_context(|| format!("cannot write {}", p.display()))?;
            }
            Ok(())
        }
        Command::Bench { what: BenchCommand::Generate { model, device, f16, batch, prompt_tokens, decode_tokens, temperature, top_k, top_p, json } } => {
            let sampling = SamplingParams { temperature, top_k, top_p, ..Default::default() };
            let report = crate::bench::generate(model.as_deref(), device, f16, batch, prompt_tokens, decode_tokens, &sampling)?;
            println!("{}", report.markdown_row());
            write_json(json, &report)?;
            Ok(())
        }
    }
}

/// The training config `memtrain eval` judges with: that of the run `model` belongs to (a run's
/// `final/` or `initial/`), else the tiny-cpu preset's, with the flags given put over it.
fn eval_config(model: Option<&Path>, memory_tokens: Option<usize>, answer_tokens: Option<usize>, memory: Option<crate::train::config::MemoryStyle>, no_repeat_ngram: Option<usize>) -> TrainConfig {
    let run = model.and_then(Path::parent).and_then(|run| crate::train::Trainer::saved_config(run).ok());
    let mut cfg = run.unwrap_or_else(TrainConfig::tiny_cpu);
    let agent = &mut cfg.agent;
    agent.memory_tokens = memory_tokens.unwrap_or(agent.memory_tokens);
    agent.answer_tokens = answer_tokens.unwrap_or(agent.answer_tokens);
    agent.no_repeat_ngram = no_repeat_ngram.unwrap_or(agent.no_repeat_ngram);
    cfg.sft.memory_style = memory.unwrap_or(cfg.sft.memory_style);
    cfg
}

/// `--json FILE`: the command's result as pretty JSON, when asked for.
fn write_json(path: Option<PathBuf>, value: &impl serde::Serialize) -> Result<()> {
    match path {
        Some(p) => std::fs::write(&p, serde_json::to_string_pretty(value)?).with_context(|| format!("cannot write {}", p.display())),
        None => Ok(()),
    }
}

fn exercises(docs: Vec<PathBuf>, out: PathBuf, preset: &str, seed: u64, model: Option<PathBuf>, mask: crate::exercises::MaskScope) -> Result<()> {
    use crate::exercises::dataset;
    let mut opts = dataset::DatasetOptions::new(docs, out);
    opts.preset = preset.parse()?;
    opts.seed = seed;
    opts.set_mask_scope(mask);
    let model = model.or_else(|| Some(checkpoint::default_model::path()).filter(|p| p.exists()));
    if let Some(m) = &model {
        opts.counter = Some(dataset::counter_from_model(m)?);
        eprintln!("counting tokens with the tokenizer of {}", m.display());
    } else {
        eprintln!("no model: counting tokens approximately");
    }
    let summary = dataset::build(&opts, &mut |p| {
        eprint!("\r{}/{} files, {} exercises", p.files_done, p.files_total, p.exercises);
        true
    })?;
    eprintln!();
    println!("{}", summary.report());
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn agent(model: Option<PathBuf>, doc: &std::path::Path, question: &str, chunk_tokens: usize, memory_tokens: usize, answer_tokens: usize, device: DeviceChoice, f16: bool) -> Result<()> {
    use crate::agent::{AgentInput, AgentParams, Policy, run_agent};
    let document = crate::documents::load_path(doc).into_iter().next().ok_or_else(|| anyhow::anyhow!("{}: not a document", doc.display()))?.map_err(|e| anyhow::anyhow!("{e}"))?;
    let session = Session::open_with(model.as_deref(), device, f16)?;
    let chunks = crate::documents::chunk::chunk_text(&document.text, chunk_tokens, &session.loaded.tokenizer);
    eprintln!("model: {} on {}; {} chunks of ≤ {chunk_tokens} tokens", session.loaded.info.name, session.device_info, chunks.len());
    let params = AgentParams { sampling: SamplingParams::default(), memory_tokens, answer_tokens };
    let traces = run_agent(&Policy::from_loaded(&session.loaded), &[AgentInput { chunks, question: question.to_string() }], 1, &params)?;
    let trace = &traces[0];
    for (i, m) in trace.memories.iter().enumerate() {
        eprintln!("--- memory after chunk {} ---\n{m}", i + 1);
    }
    println!("{}", trace.answer);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn train(data: &std::path::Path, out: &std::path::Path, preset: &str, config: Option<PathBuf>, steps: Option<usize>, sft_steps: Option<usize>, device: Option<DeviceChoice>, resume: bool) -> Result<()> {
    use crate::train::{Outcome, TrainConfig, Trainer, console};
    let mut cfg = match &config {
        Some(p) => TrainConfig::load(p)?,
        None if resume => Trainer::saved_config(out)?,
        None => TrainConfig::preset(preset)?,
    };
    if let Some(s) = steps {
        cfg.grpo_steps = s;
    }
    if let Some(s) = sft_steps {
        cfg.sft.steps = s;
    }
    if let Some(d) = device {
        cfg.device = d;
    }
    let mut trainer = Trainer::open(cfg, data, out, resume)?;
    eprintln!(
        "training {} on {} from step {} of {} ({} training exercises, {} held out) into {}",
        trainer.run.read_info().map(|i| i.model).unwrap_or_default(),
        trainer.device_info,
        trainer.state.step,
        trainer.total_steps(),
        trainer.data.train.len(),
        trainer.data.held_out.len(),
        out.display()
    );
    let cancel = console::install_ctrl_c();
    let mut progress = console::Progress::default();
    match trainer.run(&cancel, &mut |e| progress.on_event(e))? {
        Outcome::Finished => eprintln!("\ndone: {}", trainer.run.final_model().display()),
        Outcome::Cancelled { step } => eprintln!("\nstopped at step {step}; resume with --resume"),
    }
    Ok(())
}

fn info(model: Option<PathBuf>) -> Result<()> {
    let path = checkpoint::default_model::resolve(model.as_deref())?;
    let info = checkpoint::inspect(&path)?;
    let c = &info.config;
    println!("model:           {}", info.name);
    println!("path:            {}", info.path.display());
    println!("format:          {:?}", info.format);
    println!("architecture:    {}", c.architecture.name());
    println!("parameters:      {} ({:.1} M)", info.parameters, info.parameters as f64 / 1e6);
    println!("layers:          {}", c.num_layers);
    println!("hidden size:     {}", c.hidden_size);
    println!("heads:           {} (kv {}; head dim {})", c.num_heads, c.num_kv_heads, c.head_dim);
    println!("vocab size:      {}", c.vocab_size);
    println!("context length:  {}", c.max_position_embeddings);
    println!("rope theta:      {}", c.rope_theta);
    println!("tied embeddings: {}", c.tie_word_embeddings);
    let types: Vec<String> = info.tensor_types.iter().map(|(k, v)| format!("{k} x{v}")).collect();
    println!("tensor types:    {}", types.join(", "));
    println!("chat template:   {}", if info.has_chat_template { "yes" } else { "no (ChatML fallback)" });
    Ok(())
}
