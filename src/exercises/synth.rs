//! Synthetic documents: fictional but natural-looking prose with known entities.
//!
//! Each document invents a small world (people with roles, places, organisations, dates,
//! quantities, a book title) and writes chronicle-style paragraphs about it in varied sentence
//! forms, mixed with entity-free distractor paragraphs (weather, streets, routines). The same
//! seed always gives the same text. The list of entities written is returned with each document,
//! so tests and the first run have data with known answers.
//!
//! Serves `memtrain synth-docs --out DIR --count N [--seed N]` and the throughput benchmark.

use super::entities::EntityKind;
use anyhow::{Context, Result};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

const FIRST: &[&str] = &[
    "Anna", "Maren", "Tove", "Ingrid", "Helga", "Sigrid", "Edith", "Clara", "Rosa", "Lidia", "Marta", "Elise", "Judit", "Noor", "Amara",
    "Keiko", "Priya", "Leonie", "Hedda", "Vera", "Johan", "Elias", "Tobias", "Mattias", "Arvid", "Konrad", "Ruben", "Silas", "Teodor",
    "Oskar", "Anton", "Emil", "Viggo", "Casimir", "Rafael", "Idris", "Kenji", "Ravi", "Milo", "Bruno",
];
const LAST: &[&str] = &[
    "Berg",
    "Holm",
    "Lindqvist",
    "Marsh",
    "Okafor",
    "Varga",
    "Castell",
    "Dunmore",
    "Fenwick",
    "Halloran",
    "Ibsen",
    "Jarvik",
    "Kestrel",
    "Lorimer",
    "Mbeki",
    "Nyberg",
    "Orlov",
    "Pellegrini",
    "Quist",
    "Rasmussen",
    "Sandoval",
    "Thorne",
    "Ulvaeus",
    "Vance",
    "Whitlock",
    "Yates",
    "Zeller",
    "Ashby",
    "Brannock",
    "Corrigan",
    "Delacroix",
    "Engstrom",
    "Falk",
    "Granger",
];
const SYL_A: &[&str] = &[
    "Varn", "Kel", "Ask", "Bram", "Dun", "Elm", "Fal", "Gry", "Hav", "Isel", "Jor", "Lun", "Mor", "Nor", "Os", "Rav", "Sel", "Tor", "Ulm",
    "Wes",
];
const SYL_B: &[&str] =
    &["holt", "by", "vik", "stead", "mere", "wick", "dal", "ness", "ford", "haven", "mouth", "brook", "ton", "sund", "gard"];
const PLACE_KIND: &[&str] = &["", "", "", " Bay", " Cove", " Valley", " Island", " Point", " Head"];
const ORG_NOUN: &[&str] = &[
    "Fishing Cooperative",
    "Harbour Board",
    "Rowing Club",
    "Savings Bank",
    "Historical Society",
    "Brewery",
    "Shipyard",
    "Choir",
    "Ferry Company",
    "Lighthouse Trust",
    "Weaving Guild",
    "Gazette",
];
const ROLES: &[&str] = &[
    "harbour master",
    "schoolteacher",
    "ferry captain",
    "boatbuilder",
    "town clerk",
    "midwife",
    "baker",
    "engineer",
    "librarian",
    "surveyor",
    "weaver",
    "photographer",
    "mayor",
    "shopkeeper",
    "net maker",
];
const MONTHS: &[&str] =
    &["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const TITLE_ADJ: &[&str] = &["Salt", "Long", "Quiet", "Northern", "Winter", "Grey", "Lantern", "Silver", "Narrow", "Hidden"];
const TITLE_NOUN: &[&str] = &["Road", "Harbour", "Tide", "Years", "Crossing", "Shore", "Light", "Current", "Season", "Archive"];
const GOODS: &[&str] = &["herring", "timber", "salt", "wool", "coal", "barley", "granite", "cod"];

/// One generated document and the entities written into it.
#[derive(Clone, Debug)]
pub struct SynthDoc {
    pub title: String,
    pub paragraphs: Vec<String>,
    pub entities: Vec<(String, EntityKind)>,
}

impl SynthDoc {
    pub fn text(&self) -> String {
        self.paragraphs.join("\n\n")
    }
}

struct World {
    people: Vec<(String, &'static str)>,
    places: Vec<String>,
    orgs: Vec<String>,
    entities: Vec<(String, EntityKind)>,
}

fn place_name(rng: &mut ChaCha8Rng) -> String {
    format!("{}{}{}", SYL_A.choose(rng).unwrap(), SYL_B.choose(rng).unwrap(), PLACE_KIND.choose(rng).unwrap())
}

fn date(rng: &mut ChaCha8Rng) -> (String, u32) {
    let year = rng.random_range(1852..=2021);
    let month = MONTHS.choose(rng).unwrap();
    let day = rng.random_range(1..=28);
    let s = match rng.random_range(0..3) {
        0 => format!("{day} {month} {year}"),
        1 => format!("{month} {day}, {year}"),
        _ => format!("{month} {year}"),
    };
    (s, year)
}

impl World {
    fn new(rng: &mut ChaCha8Rng) -> World {
        let mut w = World { people: Vec::new(), places: Vec::new(), orgs: Vec::new(), entities: Vec::new() };
        let n_people = rng.random_range(4..=8);
        while w.people.len() < n_people {
            let name = format!("{} {}", FIRST.choose(rng).unwrap(), LAST.choose(rng).unwrap());
            // Two people sharing a surname would make "Berg" ambiguous; keep surnames distinct.
            let surname = name.split(' ').nth(1).unwrap_or("").to_string();
            if w.people.iter().any(|(p, _)| p.ends_with(&surname)) {
                continue;
            }
            w.entities.push((name.clone(), EntityKind::Person));
            w.people.push((name, ROLES.choose(rng).unwrap()));
        }
        let n_places = rng.random_range(3..=5);
        while w.places.len() < n_places {
            let p = place_name(rng);
            if !w.places.contains(&p) {
                w.entities.push((p.clone(), EntityKind::Place));
                w.places.push(p);
            }
        }
        for _ in 0..rng.random_range(2..=4) {
            let base = w.places.choose(rng).unwrap().split(' ').next().unwrap_or("Varnholt").to_string();
            let o = format!("{base} {}", ORG_NOUN.choose(rng).unwrap());
            if !w.orgs.contains(&o) {
                w.entities.push((o.clone(), EntityKind::Organisation));
                w.orgs.push(o);
            }
        }
        w
    }

    fn note(&mut self, s: &str, kind: EntityKind) {
        if !self.entities.iter().any(|(e, _)| e == s) {
            self.entities.push((s.to_string(), kind));
        }
    }

    fn person(&self, rng: &mut ChaCha8Rng) -> (String, &'static str) {
        self.people.choose(rng).unwrap().clone()
    }

    /// One sentence that states a fact about the world.
    fn fact(&mut self, rng: &mut ChaCha8Rng) -> String {
        let (p, role) = self.person(rng);
        let surname = p.split(' ').nth(1).unwrap_or("").to_string();
        let place = self.places.choose(rng).unwrap().clone();
        let org = self.orgs.choose(rng).unwrap().clone();
        let (d, year) = date(rng);
        match rng.random_range(0..12) {
            0 => {
                self.note(&d, EntityKind::Date);
                format!("On {d}, {p} arrived in {place} to work as the {role}.")
            }
            1 => {
                let n = rng.random_range(12..900);
                let q = format!("{n} members");
                self.note(&q, EntityKind::Number);
                self.note(&year.to_string(), EntityKind::Date);
                format!("By {year} the {org} had grown to {q}, most of them from {place}.")
            }
            2 => {
                let t = rng.random_range(3..60) * 100;
                let q = format!("{} tonnes", thousands(t));
                self.note(&q, EntityKind::Number);
                format!("That season the boats landed {q} of {} at the quay in {place}.", GOODS.choose(rng).unwrap())
            }
            3 => {
                let km = rng.random_range(4..120);
                let q = format!("{km} km");
                self.note(&q, EntityKind::Number);
                let other = self.places.choose(rng).unwrap();
                format!("The road from {place} to {other} was {q} long and took most of a day on foot.")
            }
            4 => {
                let amount = format!("€{}.{} million", rng.random_range(1..9), rng.random_range(1..9));
                self.note(&amount, EntityKind::Number);
                self.note(&year.to_string(), EntityKind::Date);
                format!("In {year} the {org} borrowed {amount} to rebuild the old pier.")
            }
            5 => {
                let title = format!("The {} {}", TITLE_ADJ.choose(rng).unwrap(), TITLE_NOUN.choose(rng).unwrap());
                self.note(&title, EntityKind::Title);
                format!("{p} later wrote a short book called \"{title}\" about those years.")
            }
            6 => format!("Everyone agreed that {surname} knew more about the tides than anyone else in {place}."),
            7 => {
                self.note(&year.to_string(), EntityKind::Date);
                format!("{surname} joined the {org} in {year} and kept its accounts for a decade.")
            }
            8 => format!("When the storm came, it was {p} who rowed out to the stranded boats."),
            9 => {
                let (q, _) = self.person(rng);
                format!("{p} and {q} argued for weeks about where the new school in {place} should stand.")
            }
            10 => {
                self.note(&d, EntityKind::Date);
                format!("The {org} met for the first time on {d}, in a room above the bakery.")
            }
            _ => {
                let pct = rng.random_range(5..60);
                let q = format!("{pct} percent");
                self.note(&q, EntityKind::Number);
                format!("Prices at the market in {place} rose by {q} in a single winter, and {surname} wrote to the council about it.")
            }
        }
    }
}

fn thousands(n: u32) -> String {
    if n >= 1000 { format!("{},{:03}", n / 1000, n % 1000) } else { n.to_string() }
}

const FILLER: &[&str] = &[
    "The wind came off the water most afternoons, and the gulls followed the boats in.",
    "Nobody in those days locked a door, and the children ran between the houses until dark.",
    "In the long evenings people mended nets, told stories and argued about the weather.",
    "The streets were narrow and steep, paved with stones that grew slick in the rain.",
    "Bread was baked early, and by six the smell of it had reached the harbour.",
    "Winters were hard, with ice along the shore and snow that stayed into spring.",
    "Most families kept a few sheep and a garden where potatoes and kale grew well.",
    "The church bell marked the hours, though few people needed it to know the time.",
    "Letters took weeks to arrive, and a parcel from the city was an event.",
    "On summer nights the light hardly faded, and the fishing went on until morning.",
    "There was always work to do: boats to tar, roofs to patch, wood to split.",
    "Visitors remarked on the quiet, broken only by the sea and the occasional engine.",
];

/// A paragraph without entities, for padding contexts when no other document can.
pub fn filler_paragraph(rng: &mut impl Rng) -> String {
    let n = rng.random_range(3..=5);
    (0..n).map(|_| *FILLER.choose(rng).unwrap()).collect::<Vec<_>>().join(" ")
}

/// One document of about `target_words` words.
pub fn generate(seed: u64, target_words: usize) -> SynthDoc {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut world = World::new(&mut rng);
    let title = format!("A History of {}", world.places[0]);
    let mut paragraphs = Vec::new();
    let mut words = 0;
    while words < target_words {
        let p = if rng.random_range(0..4) == 0 {
            filler_paragraph(&mut rng)
        } else {
            let n = rng.random_range(2..=5);
            let mut sentences: Vec<String> = (0..n).map(|_| world.fact(&mut rng)).collect();
            if rng.random_bool(0.5) {
                sentences.insert(rng.random_range(0..=sentences.len()), FILLER.choose(&mut rng).unwrap().to_string());
            }
            sentences.join(" ")
        };
        words += p.split_whitespace().count();
        paragraphs.push(p);
    }
    SynthDoc { title, paragraphs, entities: world.entities }
}

/// Writes `count` documents (alternating .txt and .md, 600–2,000 words) into `out`.
pub fn write_documents(out: &Path, count: usize, seed: u64) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut paths = Vec::with_capacity(count);
    for i in 0..count {
        let words = rng.random_range(600..=2000);
        let doc = generate(rng.random(), words);
        let (name, body) = if i % 2 == 0 {
            (format!("synth-{:05}.txt", i + 1), format!("{}\n\n{}\n", doc.title, doc.text()))
        } else {
            (format!("synth-{:05}.md", i + 1), format!("# {}\n\n{}\n", doc.title, doc.text()))
        };
        let path = out.join(name);
        std::fs::write(&path, body).with_context(|| format!("cannot write {}", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_seed_same_document() {
        let a = super::generate(7, 500);
        let b = super::generate(7, 500);
        assert_eq!(a.text(), b.text());
        assert_ne!(a.text(), super::generate(8, 500).text());
        assert!(a.text().split_whitespace().count() >= 500);
    }
}
