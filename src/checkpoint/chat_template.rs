//! Chat prompts from a model's Jinja chat template, rendered the way Hugging Face transformers
//! renders them (`apply_chat_template`), or with ChatML when the model has no template.
//!
//! Guarantees:
//! - Same environment as transformers: `trim_blocks` and `lstrip_blocks` on, one trailing newline
//!   of the template dropped, `raise_exception`, `strftime_now`, a `tojson` that writes what
//!   Python's `json.dumps` writes (no HTML escaping), Python string/dict methods (pycompat),
//!   loop controls, and `None`/`True`/`False` printed as Python prints them. Variables passed:
//!   `messages`, `add_generation_prompt`, `bos_token`, `eos_token`, and `tools`/`documents` as none.
//! - Sandboxed: no loader, so `include`/`import` and any file or network access fail.
//! - Always returns: a template error, `raise_exception`, or a template that runs away (huge
//!   loops, endless output, deep recursion) ends in an `Err`, never a hang. Rendering runs on
//!   its own thread under a deadline, with step and output budgets that stop runaway loops.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, bail};
use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Rest, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// A render that has not finished by then is abandoned with an error.
const RENDER_DEADLINE: Duration = Duration::from_secs(10);
/// Loop iterations over `range(..)`, method calls and printed values allowed in one render;
/// real chat templates use a few per message.
const STEP_BUDGET: u64 = 2_000_000;
/// Bytes printed through `{{ … }}` in one render.
const OUTPUT_BUDGET: u64 = 256 << 20;
/// Templates recurse rarely; deep recursion is a runaway template.
const RECURSION_LIMIT: usize = 200;
/// Rendering thread stack: minijinja recursion is deep per level.
const RENDER_STACK: usize = 32 << 20;

/// Renders `messages` with `template` (or ChatML when `None`); `add_generation_prompt` appends
/// the opening of the assistant's turn.
pub fn render_chat(
    template: Option<&str>,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    let Some(template) = template else {
        return Ok(chatml(messages, add_generation_prompt));
    };
    let job = Job {
        template: accept_generation_tags(template),
        messages: messages.to_vec(),
        add_generation_prompt,
        bos_token: bos_token.to_string(),
        eos_token: eos_token.to_string(),
    };
    render_with_deadline(job, RENDER_DEADLINE)
}

/// ChatML, the format of SmolLM2, Qwen and many others.
pub fn chatml(messages: &[ChatMessage], add_generation_prompt: bool) -> String {
    let mut out = String::new();
    for m in messages {
        let _ = write!(out, "<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content);
    }
    if add_generation_prompt {
        out.push_str("<|im_start|>assistant\n");
    }
    out
}

struct Job {
    template: String,
    messages: Vec<ChatMessage>,
    add_generation_prompt: bool,
    bos_token: String,
    eos_token: String,
}

fn render_with_deadline(job: Job, deadline: Duration) -> Result<String> {
    let guard = Arc::new(Guard::default());
    let (tx, rx) = mpsc::sync_channel(1);
    let worker_guard = guard.clone();
    std::thread::Builder::new()
        .name("chat-template".into())
        .stack_size(RENDER_STACK)
        .spawn(move || {
            let _ = tx.send(render_now(&job, worker_guard));
        })
        .map_err(|e| anyhow!("chat template: cannot start the rendering thread: {e}"))?;
    match rx.recv_timeout(deadline) {
        Ok(result) => result,
        Err(RecvTimeoutError::Timeout) => {
            // The worker stops at its next step check; we do not wait for it.
            guard.cancelled.store(true, Ordering::Relaxed);
            bail!("chat template: rendering did not finish within {deadline:?}; the template probably loops")
        }
        Err(RecvTimeoutError::Disconnected) => bail!("chat template: the rendering thread crashed"),
    }
}

fn render_now(job: &Job, guard: Arc<Guard>) -> Result<String> {
    let env = environment(guard.clone());
    let template = env
        .template_from_str(&job.template)
        .map_err(|e| template_error("does not parse", &e))?;
    let messages: Vec<Value> = job
        .messages
        .iter()
        .map(|m| Value::from_object(MessageValue(m.clone())))
        .collect();
    let ctx = minijinja::context! {
        messages => messages,
        add_generation_prompt => job.add_generation_prompt,
        bos_token => job.bos_token.as_str(),
        eos_token => job.eos_token.as_str(),
        tools => Value::from(()),
        documents => Value::from(()),
    };
    let rendered = template.render(ctx);
    if let Some(why) = guard.exhausted() {
        bail!("chat template: stopped after {why}; the template probably loops");
    }
    rendered.map_err(|e| template_error("failed", &e))
}

fn template_error(what: &str, e: &Error) -> anyhow::Error {
    match (e.kind(), e.detail()) {
        (ErrorKind::InvalidOperation, Some(msg)) if msg.starts_with(RAISED) => {
            anyhow!("chat template raised an exception: {}", &msg[RAISED.len()..])
        }
        _ => anyhow!("chat template {what}: {e}"),
    }
}

const RAISED: &str = "raise_exception: ";

/// Per-render budgets, shared between the template's hooks and the waiting caller.
#[derive(Debug, Default)]
struct Guard {
    cancelled: AtomicBool,
    steps: AtomicU64,
    output: AtomicU64,
}

impl Guard {
    /// Counts one step; false once any budget is spent or the caller gave up.
    fn step(&self, output_bytes: u64) -> bool {
        let steps = self.steps.fetch_add(1, Ordering::Relaxed) + 1;
        let output = self.output.fetch_add(output_bytes, Ordering::Relaxed) + output_bytes;
        !self.cancelled.load(Ordering::Relaxed) && steps <= STEP_BUDGET && output <= OUTPUT_BUDGET
    }

    fn check(&self, output_bytes: u64) -> Result<(), Error> {
        if self.step(output_bytes) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::InvalidOperation,
                "chat template budget exhausted",
            ))
        }
    }

    fn exhausted(&self) -> Option<String> {
        if self.cancelled.load(Ordering::Relaxed) {
            Some("the deadline".into())
        } else if self.steps.load(Ordering::Relaxed) > STEP_BUDGET {
            Some(format!("{STEP_BUDGET} steps"))
        } else if self.output.load(Ordering::Relaxed) > OUTPUT_BUDGET {
            Some(format!("{OUTPUT_BUDGET} bytes of output"))
        } else {
            None
        }
    }
}

fn environment(guard: Arc<Guard>) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_recursion_limit(RECURSION_LIMIT);
    let g = guard.clone();
    env.set_unknown_method_callback(move |state, value, method, args| {
        g.check(0)?;
        minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
    });
    let g = guard.clone();
    env.set_formatter(move |out, state, value| python_formatter(&g, out, state, value));
    let g = guard;
    env.add_function("range", move |args: Rest<i64>| guarded_range(g.clone(), &args));
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", tojson);
    env
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, format!("{RAISED}{message}")))
}

/// `range(..)` as a sequence whose iteration counts against the step budget, so nested loops
/// cannot run for hours; same limits as minijinja's own `range`.
fn guarded_range(guard: Arc<Guard>, args: &[i64]) -> Result<Value, Error> {
    let (start, stop, step) = match *args {
        [stop] => (0, stop, 1),
        [start, stop] => (start, stop, 1),
        [start, stop, step] => (start, stop, step),
        _ => return Err(Error::new(ErrorKind::InvalidOperation, "range takes 1 to 3 integers")),
    };
    if step == 0 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "cannot create range with step of 0",
        ));
    }
    let span = if step > 0 {
        i128::from(stop) - i128::from(start)
    } else {
        i128::from(start) - i128::from(stop)
    };
    let step_abs = i128::from(step).abs();
    let len = if span > 0 { (span + step_abs - 1) / step_abs } else { 0 };
    if len > 100_000 {
        return Err(Error::new(ErrorKind::InvalidOperation, "range has too many elements"));
    }
    Ok(Value::from_object(GuardedRange {
        start,
        step,
        len: len as usize,
        guard,
    }))
}

#[derive(Debug)]
struct GuardedRange {
    start: i64,
    step: i64,
    len: usize,
    guard: Arc<Guard>,
}

impl GuardedRange {
    fn item(&self, i: usize) -> Value {
        Value::from(self.start + self.step * i as i64)
    }
}

impl Object for GuardedRange {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let i = usize::try_from(key.clone()).ok()?;
        (i < self.len).then(|| self.item(i))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Iter(Box::new(RangeIter {
            range: self.clone(),
            front: 0,
            back: self.len,
        }))
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.len)
    }
}

/// Iterates a [`GuardedRange`], ending early once the budget is spent; reports an exact length
/// so `loop.last` and `loop.length` work.
struct RangeIter {
    range: Arc<GuardedRange>,
    front: usize,
    back: usize,
}

impl Iterator for RangeIter {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        if self.front >= self.back {
            return None;
        }
        if !self.range.guard.step(0) {
            self.front = self.back;
            return None;
        }
        self.front += 1;
        Some(self.range.item(self.front - 1))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

/// Prints values like Jinja2 on Python does: `None`, `True`, `['a', 1]`, `{'k': 'v'}`.
fn python_formatter(guard: &Guard, out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    match value.kind() {
        ValueKind::None | ValueKind::Bool | ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => {
            let text = python_repr(value)?;
            guard.check(text.len() as u64)?;
            out.write_str(&text).map_err(Error::from)
        }
        _ => {
            guard.check(value.as_str().map_or(16, |s| s.len() as u64))?;
            minijinja::escape_formatter(out, state, value)
        }
    }
}

fn python_repr(value: &Value) -> Result<String, Error> {
    let mut out = String::new();
    write_repr(&mut out, value, 0)?;
    Ok(out)
}

const MAX_NESTING: usize = 128;

fn write_repr(out: &mut String, value: &Value, depth: usize) -> Result<(), Error> {
    if depth > MAX_NESTING {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "value nests too deeply to print",
        ));
    }
    match value.kind() {
        ValueKind::None | ValueKind::Undefined => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::String => write_py_str(out, value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            for (i, item) in value.try_iter()?.enumerate() {
                out.push_str(if i == 0 { "" } else { ", " });
                write_repr(out, &item, depth + 1)?;
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            for (i, key) in value.try_iter()?.enumerate() {
                out.push_str(if i == 0 { "" } else { ", " });
                write_repr(out, &key, depth + 1)?;
                out.push_str(": ");
                write_repr(out, &value.get_item(&key)?, depth + 1)?;
            }
            out.push('}');
        }
        _ => {
            let _ = write!(out, "{value}");
        }
    }
    Ok(())
}

/// Python's `repr(str)`: single quotes unless the text has `'` and no `"`.
fn write_py_str(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// A message exposed to templates as a dict with keys in Python's order (`role`, `content`).
#[derive(Debug)]
struct MessageValue(ChatMessage);

impl Object for MessageValue {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "role" => Some(Value::from(self.0.role.as_str())),
            "content" => Some(Value::from(self.0.content.as_str())),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["role", "content"])
    }
}

// ---------------------------------------------------------------------------------------------
// tojson: transformers' `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`
// ---------------------------------------------------------------------------------------------

struct JsonStyle {
    ensure_ascii: bool,
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

/// Positional arguments follow transformers' signature: (ensure_ascii, indent, separators, sort_keys).
fn tojson(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let arg = |pos: usize, name: &str| -> Result<Option<Value>, Error> {
        match kwargs.get::<Option<Value>>(name)? {
            Some(v) => Ok(Some(v)),
            None => Ok(args.get(pos).cloned()),
        }
    };
    let ensure_ascii = arg(0, "ensure_ascii")?.is_some_and(|v| v.is_true());
    let indent = arg(1, "indent")?
        .filter(|v| !v.is_none())
        .map(indent_text)
        .transpose()?;
    let (item_sep, key_sep) = match arg(2, "separators")?.filter(|v| !v.is_none()) {
        Some(seps) => separators(&seps)?,
        None if indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    let sort_keys = arg(3, "sort_keys")?.is_some_and(|v| v.is_true());
    kwargs.assert_all_used()?;
    let style = JsonStyle {
        ensure_ascii,
        indent,
        item_sep,
        key_sep,
        sort_keys,
    };
    let mut out = String::new();
    write_json(&mut out, value, &style, 0)?;
    Ok(out)
}

/// Python accepts an int (that many spaces) or a string.
fn indent_text(v: Value) -> Result<String, Error> {
    if let Some(s) = v.as_str() {
        return Ok(s.to_string());
    }
    let n = i64::try_from(v)
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, "tojson indent must be an int or a string"))?;
    Ok(" ".repeat(n.clamp(0, 64) as usize))
}

fn separators(v: &Value) -> Result<(String, String), Error> {
    let parts: Vec<Value> = v.try_iter()?.collect();
    match parts.as_slice() {
        [a, b] if a.as_str().is_some() && b.as_str().is_some() => Ok((
            a.as_str().unwrap_or_default().to_string(),
            b.as_str().unwrap_or_default().to_string(),
        )),
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson separators must be two strings",
        )),
    }
}

fn write_json(out: &mut String, value: &Value, style: &JsonStyle, depth: usize) -> Result<(), Error> {
    if depth > MAX_NESTING {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson: value nests too deeply",
        ));
    }
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => write_json_number(out, value),
        ValueKind::String => write_json_str(out, value.as_str().unwrap_or_default(), style.ensure_ascii),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            write_json_container(out, style, depth, ('[', ']'), &items, |out, item| {
                write_json(out, item, style, depth + 1)
            })?;
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = value.try_iter()?.collect();
            if style.sort_keys {
                keys.sort_by_key(|k| k.to_string());
            }
            write_json_container(out, style, depth, ('{', '}'), &keys, |out, key| {
                write_json_str(out, &key.to_string(), style.ensure_ascii);
                out.push_str(&style.key_sep);
                write_json(out, &value.get_item(key)?, style, depth + 1)
            })?;
        }
        ValueKind::Undefined => {
            return Err(Error::new(ErrorKind::UndefinedError, "tojson: value is undefined"));
        }
        _ => write_json_str(out, &value.to_string(), style.ensure_ascii),
    }
    Ok(())
}

/// Writes `[…]`/`{…}` with Python's layout: inline with `item_sep`, or one item per line.
fn write_json_container(
    out: &mut String,
    style: &JsonStyle,
    depth: usize,
    (open, close): (char, char),
    items: &[Value],
    mut write_item: impl FnMut(&mut String, &Value) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    if items.is_empty() {
        out.push(close);
        return Ok(());
    }
    let newline = |out: &mut String, level: usize| {
        if let Some(ind) = &style.indent {
            out.push('\n');
            out.push_str(&ind.repeat(level));
        }
    };
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(&style.item_sep);
        }
        newline(out, depth + 1);
        write_item(out, item)?;
    }
    newline(out, depth);
    out.push(close);
    Ok(())
}

fn write_json_number(out: &mut String, value: &Value) {
    if value.is_integer() {
        let _ = write!(out, "{value}");
        return;
    }
    let f = f64::try_from(value.clone()).unwrap_or(f64::NAN);
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        let _ = write!(out, "{f:.1}");
    } else {
        let _ = write!(out, "{f}");
    }
}

fn write_json_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------------
// strftime_now (UTC; Python uses local time, which is UTC on servers and in CI)
// ---------------------------------------------------------------------------------------------

fn strftime_now(format: String) -> Result<String, Error> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(strftime(&format, secs))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// The common C `strftime` directives (and glibc's `%-d` style no-padding) for a UTC time.
fn strftime(format: &str, unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let yday = days - days_from_civil(year, 1, 1) + 1;
    let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };

    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = chars.next();
        let unpadded = spec == Some('-');
        if unpadded {
            spec = chars.next();
        }
        let num = |v: i64, width: usize| {
            if unpadded {
                v.to_string()
            } else {
                format!("{v:0width$}")
            }
        };
        let piece = match spec {
            Some('Y') => year.to_string(),
            Some('y') => num(year.rem_euclid(100), 2),
            Some('m') => num(month as i64, 2),
            Some('d') => num(day as i64, 2),
            Some('e') => format!("{day:>2}"),
            Some('H') => num(hour, 2),
            Some('I') => num(hour12, 2),
            Some('M') => num(minute, 2),
            Some('S') => num(second, 2),
            Some('j') => num(yday, 3),
            Some('p') => (if hour < 12 { "AM" } else { "PM" }).to_string(),
            Some('B') => MONTHS[month as usize - 1].to_string(),
            Some('b') | Some('h') => MONTHS[month as usize - 1][..3].to_string(),
            Some('A') => WEEKDAYS[weekday].to_string(),
            Some('a') => WEEKDAYS[weekday][..3].to_string(),
            Some('Z') => "UTC".to_string(),
            Some('z') => "+0000".to_string(),
            Some('F') => format!("{year}-{month:02}-{day:02}"),
            Some('T') => format!("{hour:02}:{minute:02}:{second:02}"),
            Some('%') => "%".to_string(),
            Some(other) => format!("%{}{other}", if unpadded { "-" } else { "" }),
            None => "%".to_string(),
        };
        out.push_str(&piece);
    }
    out
}

/// Days since 1970-01-01 → (year, month 1-12, day 1-31), proleptic Gregorian (H. Hinnant).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// ---------------------------------------------------------------------------------------------
// {% generation %} … {% endgeneration %}
// ---------------------------------------------------------------------------------------------

/// transformers' `{% generation %}` block only marks assistant text for masks; it renders its
/// body unchanged, so it becomes `{% if true %}` (keeping any `-` whitespace control).
fn accept_generation_tags(template: &str) -> String {
    if !template.contains("generation") {
        return template.to_string();
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{%") {
        let (before, tag) = rest.split_at(start);
        out.push_str(before);
        let Some(end) = tag.find("%}") else {
            rest = tag;
            break;
        };
        out.push_str(&rewrite_tag(&tag[..end + 2]));
        rest = &tag[end + 2..];
    }
    out.push_str(rest);
    out
}

fn rewrite_tag(tag: &str) -> String {
    let inner = &tag[2..tag.len() - 2];
    let trimmed = inner.trim_start_matches(['-', '+']).trim_start();
    let lead = &inner[..inner.len() - trimmed.len()];
    let word_end = trimmed
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .unwrap_or(trimmed.len());
    let replacement = match &trimmed[..word_end] {
        "generation" => "if true",
        "endgeneration" => "endif",
        _ => return tag.to_string(),
    };
    format!("{{%{lead}{replacement}{}%}}", &trimmed[word_end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(pairs: &[(&str, &str)]) -> Vec<ChatMessage> {
        pairs
            .iter()
            .map(|(r, c)| ChatMessage {
                role: r.to_string(),
                content: c.to_string(),
            })
            .collect()
    }

    #[test]
    fn chatml_fallback() {
        let m = msgs(&[("user", "Hi")]);
        assert_eq!(
            render_chat(None, &m, true, "", "").unwrap(),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            render_chat(None, &m, false, "", "").unwrap(),
            "<|im_start|>user\nHi<|im_end|>\n"
        );
    }

    #[test]
    fn python_printing_and_json() {
        let t = "{{ none }} {{ true }} {{ [1, 'a', none] }} {{ {'k': \"it's\"} }} {{ messages[0] | tojson }} {{ 'x<y' | tojson }}";
        let out = render_chat(Some(t), &msgs(&[("user", "Hi \"there\"")]), false, "", "").unwrap();
        assert_eq!(
            out,
            r#"None True [1, 'a', None] {'k': "it's"} {"role": "user", "content": "Hi \"there\""} "x<y""#
        );
    }

    #[test]
    fn tojson_options() {
        let t = "{{ {'b': 1, 'a': [1.0, 2.5]} | tojson(indent=2, sort_keys=true) }}|{{ 'é' | tojson(true) }}|{{ [1,2] | tojson(separators=(',', ':')) }}";
        let out = render_chat(Some(t), &[], false, "", "").unwrap();
        assert_eq!(
            out,
            "{\n  \"a\": [\n    1.0,\n    2.5\n  ],\n  \"b\": 1\n}|\"\\u00e9\"|[1,2]"
        );
    }

    #[test]
    fn raise_exception_is_an_error() {
        let err = render_chat(
            Some("{{ raise_exception('roles must alternate') }}"),
            &[],
            false,
            "",
            "",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "chat template raised an exception: roles must alternate"
        );
    }

    #[test]
    fn bad_templates_are_errors() {
        assert!(
            render_chat(Some("{% for %}"), &[], false, "", "")
                .unwrap_err()
                .to_string()
                .contains("does not parse")
        );
        assert!(render_chat(Some("{% include 'x' %}"), &[], false, "", "").is_err());
        assert!(render_chat(Some("{{ messages[0].role.x.y }}"), &[], false, "", "").is_err());
    }

    #[test]
    fn runaway_templates_stop() {
        let loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let started = std::time::Instant::now();
        let err = render_chat(Some(loops), &[], false, "", "").unwrap_err().to_string();
        assert!(err.contains("probably loops"), "{err}");
        let recursion = "{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}";
        assert!(render_chat(Some(recursion), &[], false, "", "").is_err());
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn deadline_reports_loop() {
        let job = Job {
            template: "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}".into(),
            messages: vec![],
            add_generation_prompt: false,
            bos_token: String::new(),
            eos_token: String::new(),
        };
        let err = render_with_deadline(job, Duration::from_millis(1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("probably loops"), "{err}");
    }

    #[test]
    fn range_behaves_like_python() {
        let t = "{{ range(3) }}{{ range(5, 0, -2) }}{{ range(2, 2) }}{{ range(4)|length }}{{ range(4)[1:] }}\
                 {% for i in range(3) %}{{ loop.last }}{% endfor %}{{ range(3)|reverse|list }}";
        let out = render_chat(Some(t), &[], false, "", "").unwrap();
        assert_eq!(out, "[0, 1, 2][5, 3, 1][]4[1, 2, 3]FalseFalseTrue[2, 1, 0]");
        assert!(render_chat(Some("{{ range(1, 2, 0) }}"), &[], false, "", "").is_err());
        assert!(render_chat(Some("{{ range(200000) }}"), &[], false, "", "").is_err());
    }

    #[test]
    fn generation_tags_render_their_body() {
        let t = "{% for m in messages %}{%- generation -%} [{{ m.content }}] {%- endgeneration %}{% endfor %}";
        assert_eq!(
            render_chat(Some(t), &msgs(&[("assistant", "a")]), false, "", "").unwrap(),
            "[a]"
        );
    }

    #[test]
    fn strftime_formats() {
        // 2024-07-23 14:05:09 UTC, a Tuesday.
        let t = 1_721_743_509;
        assert_eq!(strftime("%d %b %Y", t), "23 Jul 2024");
        assert_eq!(
            strftime("%A %B %-d, %H:%M:%S %j %y %p %%", t),
            "Tuesday July 23, 14:05:09 205 24 PM %"
        );
        assert_eq!(strftime("%Y-%m-%d", 0), "1970-01-01");
        assert_eq!(strftime("%F", 951_782_400), "2000-02-29");
    }
}
