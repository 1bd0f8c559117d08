//! Memory exercises out: self-supervised MemTrain training data from people's own documents.
//!
//! Data flow: `documents` (text with paragraphs) → [`context`]s (a window of one document plus
//! distractor paragraphs, sized by the [`curriculum`]) → [`entities`] (tokens and vocabulary in
//! `words`, patterns in `rules`, word lists in `lexicon`) → objective 1, masked entity
//! reconstruction ([`masked_entity`]) and objective 2, intermediate memory recall probes
//! ([`recall_probe`]), both masking through [`textmatch`] → `exercises.jsonl` ([`jsonl`]) and
//! `manifest.ron` ([`manifest`]), driven by [`dataset`]. Answers are scored by [`scoring`].
//! [`synth`] makes fictional documents with known entities; [`bench`](mod@bench) times the whole path.
//!
//! Contract shared by the whole module: the same inputs and seed give byte-identical output
//! (ordered containers only, seeded ChaCha RNGs, no clocks); a masked answer never appears in
//! the chunks, question or probe text of its exercise in any case variant (with
//! [`MaskScope::AfterPivot`]: in no chunk after its pivot's, by design).

pub mod bench;
pub mod context;
pub mod curriculum;
pub mod dataset;
pub mod entities;
pub mod jsonl;
mod lexicon;
pub mod manifest;
pub mod masked_entity;
pub mod recall_probe;
mod rules;
pub mod scoring;
pub mod synth;
pub mod textmatch;
mod words;

pub use curriculum::{Curriculum, MaskScope, Preset};
pub use dataset::{DatasetOptions, DatasetSummary, Progress, build};
pub use entities::{EntityKind, EntityTagger, Mention, RuleTagger, Vocab};
