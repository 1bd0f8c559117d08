//! The finder's rules, applied in order over the tokens of one text: dates and quantities
//! claim their numbers and month names first, quoted titles claim their words, capitalised runs
//! become names with what is left (see the contract in `entities.rs`).

use super::entities::{EntityKind, MAX_WORDS, Mention};
use super::lexicon::{self, is};
use super::words::{Tok, TokKind, Vocab, tokenize};

/// All mentions of `text`, sorted, non-overlapping; `toks` and `used` are reused buffers.
pub(crate) fn tag_with(text: &str, vocab: &Vocab, toks: &mut Vec<Tok>, used: &mut Vec<bool>) -> Vec<Mention> {
    tokenize(text, toks);
    let toks: &[Tok] = toks;
    used.clear();
    used.resize(toks.len(), false);
    let mut out = Vec::new();
    let headings = heading_paragraphs(text, toks);
    let cx = Cx { text, toks, vocab };
    // Order matters: dates and quantities claim their numbers and month names first, titles
    // claim quoted words, and names take what is left.
    for i in 0..toks.len() {
        // Only numbers, month names and symbols can open a date or quantity; most tokens
        // are lower-case words and skip the pattern tests.
        let t = &toks[i];
        let may_open = t.kind == TokKind::Num || t.kind == TokKind::Punct || (t.cap && t.e - t.s >= 3);
        if may_open
            && !used[i]
            && let Some((end, kind)) =
                cx.date_at(i).map(|e| (e, EntityKind::Date)).or_else(|| cx.quantity_at(i).map(|e| (e, EntityKind::Number)))
        {
            // A weekday right before a full date is part of it: "Saturday 14 August 2021".
            let mut start = i;
            if kind == EntityKind::Date && i > 0 && is_weekday(cx.w(i - 1)) && !used[i - 1] {
                start = i - 1;
            } else if kind == EntityKind::Date && i > 1 && cx.w(i - 1) == "," && is_weekday(cx.w(i - 2)) && !used[i - 2] {
                start = i - 2;
            }
            claim(used, &mut out, toks, start, end, kind);
        }
    }
    for i in 0..toks.len() {
        if toks[i].kind == TokKind::Punct
            && !used[i]
            && let Some((s, e)) = cx.title_at(i, used)
        {
            claim(used, &mut out, toks, s, e, EntityKind::Title);
        }
    }
    let mut i = 0;
    while i < toks.len() {
        if used[i] || !toks[i].cap || headings[toks[i].para] {
            i += 1;
            continue;
        }
        let (run_end, name) = cx.name_at(i, used);
        if let Some((s, e, kind)) = name {
            claim(used, &mut out, toks, s, e, kind);
        }
        i = run_end.max(i + 1);
    }
    out.sort_by_key(|m| m.start);
    out
}

fn claim(used: &mut [bool], out: &mut Vec<Mention>, toks: &[Tok], s: usize, e: usize, kind: EntityKind) {
    for u in &mut used[s..e] {
        *u = true;
    }
    let (start, end) = (toks[s].s, toks[e - 1].e);
    if kind == EntityKind::Title {
        // A title may swallow a year found earlier ("Summer of 1921"): one mention, not two.
        out.retain(|m| m.end <= start || m.start >= end);
    }
    out.push(Mention { start, end, kind });
}

fn is_weekday(w: &str) -> bool {
    matches!(w, "Monday" | "Tuesday" | "Wednesday" | "Thursday" | "Friday" | "Saturday" | "Sunday")
}

/// Per paragraph: does it look like a heading (short, no closing punctuation, mostly
/// capitalised)?
fn heading_paragraphs(text: &str, toks: &[Tok]) -> Vec<bool> {
    let mut out = vec![false; toks.last().map_or(0, |t| t.para + 1)];
    let mut start = 0;
    while start < toks.len() {
        let para = toks[start].para;
        let mut end = start;
        while end < toks.len() && toks[end].para == para {
            end += 1;
        }
        let last = &text[toks[end - 1].s..toks[end - 1].e];
        let closed = matches!(last, "." | "!" | "?" | ":" | ";" | "\"" | ")");
        if !closed {
            let words = toks[start..end].iter().filter(|t| t.kind == TokKind::Word).count();
            let long = toks[start..end].iter().filter(|t| t.kind == TokKind::Word && t.e - t.s > 3);
            let (n_long, caps) = long.fold((0, 0), |(n, c), t| (n + 1, c + usize::from(t.cap)));
            out[para] = words > 0 && words <= 12 && caps * 10 >= n_long * 6;
        }
        start = end;
    }
    out
}

struct Cx<'a> {
    text: &'a str,
    toks: &'a [Tok],
    vocab: &'a Vocab,
}

fn month_of(word: &str) -> Option<u8> {
    const MONTHS: [&str; 12] =
        ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"];
    const SHORT: [&str; 12] = ["jan", "feb", "mar", "apr", "", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    if word.len() < 3 || word.len() > 9 {
        return None;
    }
    let full = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(word));
    full.or_else(|| SHORT.iter().position(|m| !m.is_empty() && m.eq_ignore_ascii_case(word))).map(|i| i as u8 + 1)
}

impl<'a> Cx<'a> {
    fn w(&self, i: usize) -> &'a str {
        &self.text[self.toks[i].s..self.toks[i].e]
    }

    fn kind(&self, i: usize) -> Option<TokKind> {
        self.toks.get(i).map(|t| t.kind)
    }

    /// Tokens i and i+1 touch (no space between them).
    fn adjacent(&self, i: usize) -> bool {
        i + 1 < self.toks.len() && self.toks[i].e == self.toks[i + 1].s
    }

    fn same_para(&self, a: usize, b: usize) -> bool {
        b < self.toks.len() && self.toks[a].para == self.toks[b].para
    }

    fn day_at(&self, i: usize) -> bool {
        if self.kind(i) != Some(TokKind::Num) {
            return false;
        }
        let w = self.w(i);
        let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let suffix = &w[digits.len()..];
        matches!(suffix, "" | "st" | "nd" | "rd" | "th") && digits.parse::<u32>().is_ok_and(|d| (1..=31).contains(&d))
    }

    fn year_at(&self, i: usize) -> bool {
        self.kind(i) == Some(TokKind::Num) && {
            let w = self.w(i);
            let digits = w.strip_suffix('s').unwrap_or(w);
            digits.len() == 4 && digits.parse::<u32>().is_ok_and(|y| (1000..=2100).contains(&y))
        }
    }

    fn month_at(&self, i: usize) -> bool {
        self.kind(i) == Some(TokKind::Word) && self.toks[i].cap && month_of(self.w(i)).is_some()
    }

    /// End (exclusive token index) of a date starting at `i`.
    fn date_at(&self, i: usize) -> Option<usize> {
        let t = self.toks[i];
        if t.kind == TokKind::Num {
            let w = self.w(i);
            // 1998-03-12 and 12/03/1998 (the slashes are separate, touching tokens).
            if w.len() == 10 && w.as_bytes()[4] == b'-' && w.as_bytes()[7] == b'-' {
                return Some(i + 1);
            }
            if self.adjacent(i)
                && self.adjacent(i + 1)
                && self.adjacent(i + 2)
                && self.adjacent(i + 3)
                && self.w(i + 1) == "/"
                && self.w(i + 3) == "/"
                && self.kind(i + 2) == Some(TokKind::Num)
                && self.year_at(i + 4)
            {
                return Some(i + 5);
            }
            // 12 March 1998, 12th of March, 12 March.
            if self.day_at(i) && self.same_para(i, i + 1) {
                let mut j = i + 1;
                if self.kind(j) == Some(TokKind::Word) && self.w(j) == "of" {
                    j += 1;
                }
                if j < self.toks.len() && self.month_at(j) {
                    let mut end = j + 1;
                    let mut k = end;
                    if k < self.toks.len() && self.w(k) == "," {
                        k += 1;
                    }
                    if self.year_at(k) {
                        end = k + 1;
                    }
                    return Some(end);
                }
            }
            // A year alone, unless a unit or counted noun follows (then it is a quantity).
            if self.year_at(i) && self.quantity_at(i).is_none() && !self.currency_before(i) {
                return Some(i + 1);
            }
            return None;
        }
        if self.month_at(i) {
            // "May" needs a number next to it: otherwise it is the verb.
            let mut k = i + 1;
            if self.day_at(k) {
                let mut end = k + 1;
                k += 1;
                if k < self.toks.len() && self.w(k) == "," {
                    k += 1;
                }
                if self.year_at(k) {
                    end = k + 1;
                }
                return Some(end);
            }
            if k < self.toks.len() && self.w(k) == "," {
                k += 1;
            }
            if self.year_at(k) {
                return Some(k + 1);
            }
        }
        None
    }

    fn currency_before(&self, i: usize) -> bool {
        i > 0 && self.adjacent(i - 1) && matches!(self.w(i - 1), "$" | "€" | "£" | "¥")
    }

    /// End of a quantity starting at `i`: money, a number with a unit, percent, or a counted noun.
    fn quantity_at(&self, i: usize) -> Option<usize> {
        // A sign glued to the number belongs to it: "−56 °C".
        if matches!(self.w(i), "−" | "-" | "+" | "±")
            && self.adjacent(i)
            && self.kind(i + 1) == Some(TokKind::Num)
            && (i == 0 || !self.adjacent(i - 1))
        {
            return self.quantity_at(i + 1);
        }
        let mut j = i;
        let currency = matches!(self.w(i), "$" | "€" | "£" | "¥") && self.adjacent(i) && self.kind(i + 1) == Some(TokKind::Num);
        if currency {
            j += 1;
        }
        if self.kind(j) != Some(TokKind::Num) {
            return None;
        }
        let num = self.w(j);
        // A unit glued to the digits: 40km, 5kg.
        let suffix = num.trim_start_matches(|c: char| c.is_ascii_digit() || c == ',' || c == '.');
        if !suffix.is_empty() && !currency {
            return (is(&lexicon::UNITS, suffix) && !matches!(suffix, "s" | "st" | "nd" | "rd" | "th")).then_some(j + 1);
        }
        let mut end = j + 1;
        if self.same_para(j, end) && self.kind(end) == Some(TokKind::Word) && is(&lexicon::MAGNITUDES, self.w(end)) {
            end += 1;
        }
        if self.same_para(j, end) {
            let next = self.w(end);
            if next == "%" {
                return Some(end + 1);
            }
            if next == "per" && self.toks.get(end + 1).is_some_and(|_| self.w(end + 1) == "cent") {
                return Some(end + 2);
            }
            if next == "°" {
                let with_scale = self.adjacent(end) && matches!(self.w(end + 1), "C" | "F");
                return Some(if with_scale { end + 2 } else { end + 1 });
            }
            if self.kind(end) == Some(TokKind::Word) && !self.toks[end].cap {
                if is(&lexicon::UNITS, next) {
                    // Compound units: "square metres", "km per hour".
                    let mut e = end + 1;
                    if self.same_para(j, e)
                        && matches!(next, "square" | "cubic" | "sq")
                        && self.kind(e) == Some(TokKind::Word)
                        && is(&lexicon::UNITS, self.w(e))
                    {
                        e += 1;
                    }
                    if self.same_para(j, e + 1)
                        && self.w(e) == "per"
                        && self.kind(e + 1) == Some(TokKind::Word)
                        && is(&lexicon::UNITS, self.w(e + 1))
                    {
                        e += 2;
                    }
                    return Some(e);
                }
                // A counted noun: "14 boats". Plural, not a verb, not a function word.
                let plural = next.len() > 3 && next.ends_with('s') && !next.ends_with("ss");
                if plural && !is(&lexicon::S_VERBS, next) && !is(&lexicon::STOPWORDS, next) && !self.year_at(j) && !currency {
                    return Some(end + 1);
                }
            }
        }
        if currency || end > j + 1 {
            return Some(end);
        }
        None
    }

    /// A quoted title at the opening quote `i`: returns the token range inside the quotes.
    fn title_at(&self, i: usize, used: &[bool]) -> Option<(usize, usize)> {
        if self.w(i) != "\"" {
            return None;
        }
        let mut j = i + 1;
        let mut words = 0;
        while j < self.toks.len() && self.same_para(i, j) && self.w(j) != "\"" {
            if used[j] && self.kind(j) != Some(TokKind::Num) {
                return None;
            }
            if self.kind(j) != Some(TokKind::Punct) {
                words += 1;
            }
            j += 1;
        }
        if j >= self.toks.len() || !self.same_para(i, j) || words == 0 || words > MAX_WORDS || j == i + 1 {
            return None;
        }
        let (s, mut e) = (i + 1, j);
        // Speech, not a title: commas or full stops inside, or a sentence end before the quote.
        for k in s..e {
            let w = self.w(k);
            let last = k + 1 == e;
            if matches!(w, "," | ";" | ":") || (w == "." && !(k > s && self.w(k - 1).len() == 1)) || (matches!(w, "!" | "?") && !last) {
                return None;
            }
        }
        if matches!(self.w(e - 1), "!" | "?") {
            e -= 1;
            if e == s {
                return None;
            }
        }
        if !self.toks[s].cap && self.kind(s) != Some(TokKind::Num) {
            return None;
        }
        let title_case = (s..e).filter(|&k| self.kind(k) == Some(TokKind::Word) && self.w(k).len() > 3).all(|k| self.toks[k].cap);
        let cued = (i.saturating_sub(2)..i).any(|k| self.kind(k) == Some(TokKind::Word) && is(&lexicon::TITLE_CUES, self.w(k)));
        (title_case || cued).then_some((s, e))
    }

    /// The capitalised run at `i`: returns where scanning continues and the name, if any.
    fn name_at(&self, i: usize, used: &[bool]) -> (usize, Option<(usize, usize, EntityKind)>) {
        let toks = self.toks;
        let is_cap = |k: usize| k < toks.len() && !used[k] && toks[k].kind == TokKind::Word && toks[k].cap && self.same_para(i, k);
        let mut end = i + 1;
        loop {
            if is_cap(end) && !toks[end].sent_start {
                end += 1;
                continue;
            }
            // "J. Holm", "St. Ives": a full stop after an initial or abbreviation, inside a name.
            let prev = self.w(end - 1);
            if end < toks.len()
                && self.w(end) == "."
                && (prev.chars().count() == 1 || matches!(prev, "St" | "Mt" | "Ft" | "Dr" | "Mr" | "Mrs" | "Ms" | "Prof"))
                && is_cap(end + 1)
            {
                end += 2;
                continue;
            }
            // "Bank of England", "Holm & Sons", "Ludwig van Beethoven": a connector followed by
            // another capitalised word. "of"/"for" need a head noun before them ("University of
            // Oslo"), else "from Liverpool for Halifax" would become one name.
            let head_before = || is(&lexicon::ORG_CUES, prev) || is(&lexicon::PLACE_CUES, prev) || is(&lexicon::HONORIFICS, prev);
            let connector = || is(&lexicon::CONNECTORS, self.w(end)) && (!matches!(self.w(end), "of" | "for" | "upon") || head_before());
            if end < toks.len() && !used[end] && self.same_para(i, end) && !toks[end].cap && toks[end].kind != TokKind::Num && connector() {
                let mut k = end + 1;
                if self.w(end) == "of" && k < toks.len() && self.w(k) == "the" {
                    k += 1;
                }
                if is_cap(k) {
                    end = k + 1;
                    continue;
                }
            }
            break;
        }
        let scan_to = end;
        let mut s = i;
        let mut kind_hint = None;
        // Sentence start: drop a leading function word ("The Harbour Board"), and keep a lone
        // word only when the document shows it as a name elsewhere.
        if toks[s].sent_start {
            let first = self.w(s);
            let common = is(&lexicon::STOPWORDS, first) || is(&lexicon::GENERIC_CAPS, first) || self.vocab.seen_lower(first);
            if common && !is(&lexicon::HONORIFICS, first) {
                s += 1;
                while s < end && self.w(s) == "." {
                    s += 1;
                }
            } else if end - s == 1 && !toks[s].upper && (self.vocab.seen_lower(first) || !self.vocab.seen_capitalised(first)) {
                return (scan_to, None);
            }
        }
        // Weekdays and months at the edge of a run are not part of the name ("Monday Anna Berg").
        while s < end && (month_of(self.w(s)).is_some() || is_weekday(self.w(s)) || self.w(s) == "I") {
            s += 1;
        }
        if s >= end {
            return (scan_to, None);
        }
        // Honorifics: "Dr. Anna Berg" → "Anna Berg", typed as a person.
        if is(&lexicon::HONORIFICS, self.w(s)) {
            let mut k = s + 1;
            if k < end && self.w(k) == "." {
                k += 1;
            }
            if k < end {
                s = k;
                kind_hint = Some(EntityKind::Person);
            }
        }
        let words: Vec<&str> = (s..end).filter(|&k| toks[k].kind == TokKind::Word).map(|k| self.w(k)).collect();
        if words.is_empty() || words.len() > MAX_WORDS {
            return (scan_to, None);
        }
        if words.iter().all(|w| is(&lexicon::GENERIC_CAPS, w) || is(&lexicon::STOPWORDS, w) || is(&lexicon::HONORIFICS, w)) {
            return (scan_to, None);
        }
        if words.len() == 1 {
            let w = words[0];
            if toks[s].upper {
                let letters = w.chars().filter(|c| c.is_alphabetic()).count();
                if is(&lexicon::GENERIC_ACRONYMS, w) || !(2..=6).contains(&letters) {
                    return (scan_to, None);
                }
                return (scan_to, Some((s, end, EntityKind::Organisation)));
            }
            if w.chars().count() < 2 {
                return (scan_to, None);
            }
        }
        // Shouted text is not a name.
        if words.len() >= 3 && (s..end).all(|k| toks[k].kind != TokKind::Word || toks[k].upper) {
            return (scan_to, None);
        }
        let kind = kind_hint.unwrap_or_else(|| self.type_name(s, end, &words));
        (scan_to, Some((s, end, kind)))
    }

    fn type_name(&self, s: usize, end: usize, words: &[&str]) -> EntityKind {
        let span = &self.text[self.toks[s].s..self.toks[end - 1].e];
        if words.iter().any(|w| is(&lexicon::ORG_CUES, w)) || span.contains(" & ") {
            return EntityKind::Organisation;
        }
        if words.iter().any(|w| is(&lexicon::PLACE_CUES, w)) || (words.len() > 1 && is(&lexicon::PLACE_PREFIXES, words[0])) {
            return EntityKind::Place;
        }
        if is(&lexicon::FIRST_NAMES, words[0]) {
            return EntityKind::Person;
        }
        let prev_is_place_prep = s > 0 && self.kind(s - 1) == Some(TokKind::Word) && is(&lexicon::PLACE_PREPOSITIONS, self.w(s - 1));
        // "the town of X": "of" after a settlement noun.
        let word_at = |k: usize| self.kind(k) == Some(TokKind::Word);
        let after_settlement_of = s > 1 && word_at(s - 1) && self.w(s - 1) == "of" && word_at(s - 2) && is(&lexicon::SETTLEMENT_NOUNS, self.w(s - 2));
        if prev_is_place_prep || after_settlement_of {
            return EntityKind::Place;
        }
        if (2..=3).contains(&words.len()) && words.iter().all(|w| w.chars().next().is_some_and(char::is_uppercase)) {
            return EntityKind::Person;
        }
        EntityKind::Other
    }
}
