//! Synthetic documents: fictional but natural-looking prose with known entities.
//!
//! Each document invents a small world (people with roles, places, organisations, dates,
//! quantities, a book title) and writes chronicle-style paragraphs about it in varied sentence
//! forms, mixed with entity-free distractor paragraphs (weather, streets, routines). The same
//! seed always gives the same text.
//!
//! Every person, place and organisation has an epithet of its own in its world (a role, the kind
//! of place, where the organisation sits) that is written beside its name at every mention, as
//! real prose keeps calling someone "the harbour master". That is what makes a masked name
//! recoverable: "the ferry captain [MASK] rowed out" names the person a memory kept as "the ferry
//! captain Arvid Ashby". Without it the facts are random and any of the world's names of that
//! kind fits the blank equally well, so no memory, however good, could answer.
//!
//! The list of entities written is returned with each document, so tests and the first run have
//! data with known answers.
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
const PLACE_TRAITS: &[&str] = &[
    "fishing village",
    "mill town",
    "market town",
    "island parish",
    "harbour town",
    "mining village",
    "ferry landing",
    "farming hamlet",
];
const ORG_SITES: &[&str] = &[
    "on the quay",
    "by the church",
    "in the old mill",
    "on the high street",
    "above the harbour",
    "near the ferry slip",
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
    /// Each person, place and organisation with the epithet written beside it at every mention.
    pub epithets: Vec<(String, &'static str)>,
}

impl SynthDoc {
    pub fn text(&self) -> String {
        self.paragraphs.join("\n\n")
    }
}

/// A named thing of the world with the epithet written beside it at every mention.
#[derive(Clone)]
struct Named {
    name: String,
    epithet: &'static str,
}

struct World {
    people: Vec<Named>,
    places: Vec<Named>,
    orgs: Vec<Named>,
    entities: Vec<(String, EntityKind)>,
}

/// `count` distinct epithets drawn from `pool` (count ≤ pool length).
fn distinct(pool: &[&'static str], count: usize, rng: &mut ChaCha8Rng) -> Vec<&'static str> {
    pool.choose_multiple(rng, count).copied().collect()
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
        let roles = distinct(ROLES, n_people, rng);
        while w.people.len() < n_people {
            let name = format!("{} {}", FIRST.choose(rng).unwrap(), LAST.choose(rng).unwrap());
            // Two people sharing a surname would make "Berg" ambiguous; keep surnames distinct.
            let surname = name.split(' ').nth(1).unwrap_or("").to_string();
            if w.people.iter().any(|p| p.name.ends_with(&surname)) {
                continue;
            }
            w.entities.push((name.clone(), EntityKind::Person));
            w.people.push(Named { name, epithet: roles[w.people.len()] });
        }
        let n_places = rng.random_range(3..=5);
        let traits = distinct(PLACE_TRAITS, n_places, rng);
        while w.places.len() < n_places {
            let p = place_name(rng);
            // "Lunmere" and "Lunmere Bay" in one world would make "Lunmere" ambiguous.
            let first = p.split(' ').next().unwrap_or("").to_string();
            if !w.places.iter().any(|q| q.name.split(' ').next() == Some(first.as_str())) {
                w.entities.push((p.clone(), EntityKind::Place));
                w.places.push(Named { name: p, epithet: traits[w.places.len()] });
            }
        }
        let n_orgs = rng.random_range(2..=4);
        let sites = distinct(ORG_SITES, n_orgs, rng);
        for site in sites {
            let base = w.places.choose(rng).unwrap().name.split(' ').next().unwrap_or("Varnholt").to_string();
            let o = format!("{base} {}", ORG_NOUN.choose(rng).unwrap());
            if !w.orgs.iter().any(|q| q.name == o) {
                w.entities.push((o.clone(), EntityKind::Organisation));
                w.orgs.push(Named { name: o, epithet: site });
            }
        }
        w
    }

    fn note(&mut self, s: &str, kind: EntityKind) {
        if !self.entities.iter().any(|(e, _)| e == s) {
            self.entities.push((s.to_string(), kind));
        }
    }

    /// One sentence that states a fact about the world.
    fn fact(&mut self, rng: &mut ChaCha8Rng) -> String {
        let person = self.people.choose(rng).unwrap().clone();
        // "the ferry captain Arvid Ashby", "the ferry captain Ashby", "the mill town of Lunmere",
        // "the Dunmere Savings Bank on the quay".
        let (p, role) = (format!("the {} {}", person.epithet, person.name), person.epithet);
        let surname = format!("the {role} {}", person.name.split(' ').nth(1).unwrap_or(""));
        let at = |n: &Named| format!("the {} of {}", n.epithet, n.name);
        let place_named = self.places.choose(rng).unwrap().clone();
        let place = at(&place_named);
        let org_named = self.orgs.choose(rng).unwrap();
        let org = format!("{} {}", org_named.name, org_named.epithet);
        let (d, year) = date(rng);
        let s = match rng.random_range(0..12) {
            0 => {
                self.note(&d, EntityKind::Date);
                format!("On {d}, {} arrived in {place} to work as the {role}.", person.name)
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
                let others: Vec<&Named> = self.places.iter().filter(|o| o.name != place_named.name).collect();
                let other = at(others.choose(rng).unwrap());
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
                // Someone else: "X and X argued" would read as a slip.
                let others: Vec<&Named> = self.people.iter().filter(|o| o.name != person.name).collect();
                let other = others.choose(rng).unwrap();
                let q = format!("the {} {}", other.epithet, other.name);
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
        };
        capitalise_first(s)
    }
}

/// Sentences may open with an epithet ("the ferry captain ..."); prose opens with a capital.
fn capitalise_first(s: String) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_lowercase() => c.to_uppercase().chain(chars).collect(),
        _ => s,
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
    let title = format!("A History of {}", world.places[0].name);
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
    let epithets = world.people.iter().chain(&world.places).chain(&world.orgs).map(|n| (n.name.clone(), n.epithet)).collect();
    SynthDoc { title, paragraphs, entities: world.entities, epithets }
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

    /// What makes a masked name recoverable: within a world no two names share an epithet, and
    /// every sentence that names a person (by surname too), place or organisation carries its
    /// epithet.
    #[test]
    fn every_mention_carries_the_epithet_of_its_name_alone() {
        use super::EntityKind::{Organisation, Person};
        for seed in 0..40 {
            let doc = super::generate(seed, 800);
            let kind = |name: &str| doc.entities.iter().find(|(n, _)| n == name).map(|(_, k)| *k);
            let mut seen = std::collections::HashSet::new();
            assert!(doc.epithets.iter().all(|(_, e)| seen.insert(*e)), "seed {seed}: shared epithet {:?}", doc.epithets);
            let mut mentions = 0;
            for sentence in doc.text().split_inclusive(['.', '\n']) {
                // Organisations are named after places: their mentions must not count as the place's.
                let mut rest = sentence.to_string();
                for (name, epithet) in doc.epithets.iter().filter(|(n, _)| kind(n) == Some(Organisation)) {
                    if rest.contains(name.as_str()) {
                        mentions += 1;
                        assert!(rest.contains(&format!("{name} {epithet}")), "seed {seed}: {name:?} without {epithet:?} in {sentence:?}");
                        rest = rest.replace(name.as_str(), "");
                    }
                }
                for (name, epithet) in doc.epithets.iter().filter(|(n, _)| kind(n) != Some(Organisation)) {
                    let key = if kind(name) == Some(Person) { name.split(' ').nth(1).unwrap() } else { name.as_str() };
                    if rest.contains(key) {
                        mentions += 1;
                        assert!(rest.contains(epithet), "seed {seed}: {name:?} without {epithet:?} in {sentence:?}");
                    }
                }
            }
            assert!(mentions > 20, "seed {seed}: {mentions} mentions");
        }
    }
}
