//! Entity finding in English text, by rules (no model, no Python).
//!
//! Finds: capitalised multi-word names not explained by sentence starts, acronyms, numbers with
//! units or money or counted nouns, years and dates, and quoted titles; each with a coarse
//! [`EntityKind`] for charts. The paper uses spaCy NER; [`EntityTagger`] is the seam where a
//! model-based tagger can replace [`RuleTagger`].
//!
//! Contract:
//! - `tag` returns non-overlapping mentions sorted by start; spans are byte ranges on char
//!   boundaries of the given text, never starting or ending in whitespace or a quote.
//! - A mention is at most [`MAX_WORDS`] words and never a stop word or a generic capitalised
//!   word alone ("Monday", "Chapter", "English").
//! - A capitalised word at a sentence start counts as a name only when the document shows it
//!   capitalised elsewhere mid-sentence and never in lower case ([`Vocab`]).
//! - Headings (short lines, mostly capitalised, no closing punctuation) give no names.

use super::rules::tag_with;
use super::words::Tok;
use serde::{Deserialize, Serialize};

pub use super::words::Vocab;

pub const MAX_WORDS: usize = 8;

/// Coarse entity type, for charts and difficulty; not used to pick answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Person,
    Organisation,
    Place,
    Number,
    Date,
    Title,
    Other,
}

impl EntityKind {
    pub const ALL: [EntityKind; 7] = [
        EntityKind::Person,
        EntityKind::Organisation,
        EntityKind::Place,
        EntityKind::Number,
        EntityKind::Date,
        EntityKind::Title,
        EntityKind::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EntityKind::Person => "person",
            EntityKind::Organisation => "organisation",
            EntityKind::Place => "place",
            EntityKind::Number => "number",
            EntityKind::Date => "date",
            EntityKind::Title => "title",
            EntityKind::Other => "other",
        }
    }

    /// Person, organisation, place and other names: the "name-like" class of the issue.
    pub fn is_name(self) -> bool {
        matches!(self, EntityKind::Person | EntityKind::Organisation | EntityKind::Place | EntityKind::Other)
    }
}

/// One occurrence of an entity in a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mention {
    pub start: usize,
    pub end: usize,
    pub kind: EntityKind,
}

/// Finds entity mentions. `vocab` carries document-wide evidence about capitalisation.
pub trait EntityTagger {
    fn tag(&self, text: &str, vocab: &Vocab) -> Vec<Mention>;
    fn name(&self) -> &'static str;
}

/// The rule-based finder (see the module contract).
#[derive(Clone, Copy, Debug, Default)]
pub struct RuleTagger;

impl EntityTagger for RuleTagger {
    fn name(&self) -> &'static str {
        "rules"
    }

    fn tag(&self, text: &str, vocab: &Vocab) -> Vec<Mention> {
        // Reused buffers: `tag` runs once per unit, and allocation showed in the profile.
        thread_local! {
            static SCRATCH: std::cell::RefCell<(Vec<Tok>, Vec<bool>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        SCRATCH.with(|s| {
            let (toks, used) = &mut *s.borrow_mut();
            tag_with(text, vocab, toks, used)
        })
    }
}

/// An entity with all its mentions folded together (case-insensitive), in first-seen order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entity {
    /// Surface form of the first mention.
    pub text: String,
    pub kind: EntityKind,
    pub mentions: usize,
}

/// Groups mentions by case-folded text, keeping the first surface form and kind. A unit has a
/// handful of mentions, so a linear scan beats a map here.
pub fn group(text: &str, mentions: &[Mention]) -> Vec<Entity> {
    let mut out: Vec<Entity> = Vec::new();
    for m in mentions {
        let surface = &text[m.start..m.end];
        match out.iter_mut().find(|e| same_folded(&e.text, surface)) {
            Some(e) => e.mentions += 1,
            None => out.push(Entity { text: surface.to_string(), kind: m.kind, mentions: 1 }),
        }
    }
    out
}

/// Case-insensitive equality (full Unicode lower case).
pub fn same_folded(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
}

/// Convenience: mentions in a standalone text, using the text itself as the vocabulary.
pub fn find(text: &str) -> Vec<Mention> {
    RuleTagger.tag(text, &Vocab::from_text(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(String, EntityKind)> {
        find(text).into_iter().map(|m| (text[m.start..m.end].to_string(), m.kind)).collect()
    }

    #[test]
    fn finds_names_dates_quantities_and_titles() {
        let t = "On 12 March 1998 the North Sea Ferry Company sold 14 boats to Dr. Anna Berg for $4.2 million. \
                 She renamed one \"The Salt Road\" and sailed 40 km to Kelby Cove. NASA watched. In 2003 Berg retired.";
        let f = found(t);
        let names: Vec<&str> = f.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "12 March 1998",
                "North Sea Ferry Company",
                "14 boats",
                "Anna Berg",
                "$4.2 million",
                "The Salt Road",
                "40 km",
                "Kelby Cove",
                "NASA",
                "2003",
                "Berg"
            ]
        );
        let kind = |n: &str| f.iter().find(|(s, _)| s == n).unwrap().1;
        assert_eq!(kind("12 March 1998"), EntityKind::Date);
        assert_eq!(kind("North Sea Ferry Company"), EntityKind::Organisation);
        assert_eq!(kind("Anna Berg"), EntityKind::Person);
        assert_eq!(kind("$4.2 million"), EntityKind::Number);
        assert_eq!(kind("The Salt Road"), EntityKind::Title);
        assert_eq!(kind("Kelby Cove"), EntityKind::Place);
    }

    #[test]
    fn sentence_starts_are_not_names_unless_seen_elsewhere() {
        assert!(found("However the rain came. Rain is common here, said rain experts.").is_empty());
        let f = found("Holm arrived late. Everyone waited for Holm.");
        assert_eq!(f.iter().filter(|(s, _)| s == "Holm").count(), 2, "{f:?}");
    }

    #[test]
    fn possessives_stay_outside_the_name() {
        let f = found("We met Anna Berg's brother in Tromsø.");
        assert_eq!(f[0].0, "Anna Berg");
        assert_eq!(f[1].0, "Tromsø");
    }

    #[test]
    fn a_name_after_a_settlement_noun_and_of_is_a_place() {
        let f = found("The road from the mill town of Lunmere was long, said the son of Varga.");
        let kind = |n: &str| f.iter().find(|(s, _)| s == n).map(|x| x.1);
        assert_eq!(kind("Lunmere"), Some(EntityKind::Place), "{f:?}");
        assert_ne!(kind("Varga"), Some(EntityKind::Place), "{f:?}");
    }

    #[test]
    fn headings_give_no_names() {
        assert!(found("The Long Winter Of Varnholt\n\nIt was cold.").is_empty());
    }
}
