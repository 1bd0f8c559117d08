//! Word lists for the rule-based entity finder (English). All entries are lower case; look-ups
//! go through [`is`], which lower-cases ASCII without allocating.

use std::collections::HashSet;
use std::sync::LazyLock;

// Keyed by bytes: look-ups then need no UTF-8 check on the lower-cased copy.
type Set = HashSet<&'static [u8], std::hash::BuildHasherDefault<super::words::WordHasher>>;

pub(crate) struct List(LazyLock<Set>);

macro_rules! list {
    ($name:ident, $words:expr $(,)?) => {
        pub(crate) static $name: List = List(LazyLock::new(|| $words.split_whitespace().map(str::as_bytes).collect()));
    };
}

/// True when the lower-cased `word` is in `list`. Runs for most capitalised words of every
/// document, so ASCII words are lower-cased into a stack buffer.
pub(crate) fn is(list: &List, word: &str) -> bool {
    let mut buf = [0u8; 40];
    if word.len() > buf.len() {
        return false;
    }
    if word.is_ascii() {
        let key = &mut buf[..word.len()];
        key.copy_from_slice(word.as_bytes());
        key.make_ascii_lowercase();
        list.0.contains(&*key)
    } else {
        list.0.contains(word.to_lowercase().as_bytes())
    }
}

// Function words and frequent sentence openers: a capitalised one at a sentence start says
// nothing about a name.
list!(
    STOPWORDS,
    "a about above across after afterwards again against all almost alone along already also although always am among an and
     another any anybody anyone anything anywhere are around as at back be became because become been before beforehand
     behind being below beside besides between beyond both but by can cannot could did do does doing done down during each
     either else elsewhere enough even ever every everyone everything everywhere except few first for former formerly from
     further had has have having he hence her here hers herself him himself his how however i if in indeed instead into is it
     its itself just last later latter least less like many may me meanwhile might mine more moreover most mostly much must
     my myself near nearly neither never nevertheless next no nobody none nor not nothing now nowhere of off often on once one
     only onto or other others otherwise our ours ourselves out over own perhaps please quite rather really same she should
     since so some somehow someone something sometimes somewhere soon still such than that the their theirs them themselves
     then there thereafter therefore these they this those though through throughout thus to together too toward towards
     under unless unlike until up upon us very via was we well were what whatever when whenever where whereas wherever whether
     which while who whoever whole whom whose why will with within without would yet you your yours yourself yourselves
     yesterday today tomorrow tonight eventually finally suddenly later earlier initially originally recently currently
     once twice several both every each most many some few little much mr mrs ms dr let lets yes oh ah dear hello thanks
     thank please sure certainly clearly obviously apparently unfortunately fortunately luckily sadly perhaps maybe
     actually basically generally usually typically frequently rarely seldom occasionally ultimately overall altogether
     additionally furthermore consequently accordingly likewise similarly nonetheless regardless besides hopefully
     honestly surely indeed anyway anyhow despite given following according including regarding concerning considering
     during throughout within beneath inside outside upstairs downstairs abroad ahead apart aside away home here there
     good great new old big small long short high low early late next last first second third fourth fifth",
);

// Capitalised words that are not names on their own.
list!(
    GENERIC_CAPS,
    "i monday tuesday wednesday thursday friday saturday sunday january february march april may june july august september
     october november december chapter section figure table page part appendix note notes volume introduction conclusion
     summary contents index preface prologue epilogue god ok okay sir madam mister miss mum mom dad mother father uncle aunt
     english french german spanish italian dutch danish swedish norwegian finnish icelandic polish russian greek turkish
     chinese japanese korean indian arabic african american european british irish scottish welsh canadian australian
     mexican brazilian portuguese austrian swiss belgian czech hungarian romanian ukrainian latin christian muslim jewish
     catholic protestant western eastern northern southern north south east west internet web am pm bc ad ce bce",
);

// Acronym-looking words that are not names.
list!(
    GENERIC_ACRONYMS,
    "i a ok ceo cfo cto coo phd mba bsc msc ba ma pdf tv dvd cd usb gps am pm id faq html diy vip asap ai it hr pr pc
     ii iii iv vi vii viii ix xi xii xiii xiv xv xx co inc ltd mr mrs ms dr st no vs etc fyi rsvp tba tbd eta aka",
);

// Titles before a person's name; stripped from the entity, they mark it as a person.
list!(
    HONORIFICS,
    "mr mrs ms miss dr prof professor sir dame lord lady captain capt mayor president judge father sister brother uncle aunt
     senator governor general colonel lieutenant sergeant inspector detective king queen prince princess duke duchess
     count countess baron baroness bishop reverend rev pastor minister chancellor admiral commander officer doctor nurse
     chairman chairwoman director chief",
);

// Lower-case words allowed inside a name when a capitalised word follows ("Bank of England").
list!(CONNECTORS, "of for de van von der den du da di la le del y upon & zu af al el bin ibn");

// Words that make a name an organisation.
list!(
    ORG_CUES,
    "company co inc ltd llc plc corporation corp group bank university college school institute museum library council board
     committee commission ministry department agency society association union league club trust foundation fund party
     press times news gazette herald tribune journal chronicle courier review observer post cooperative co-operative guild
     federation office authority service services hospital clinic church cathedral academy orchestra band choir theatre
     theater studio studios works brewery shipyard lines airlines airways railway railways records partners brothers sons
     industries holdings enterprises systems labs laboratory laboratories bureau institution network alliance council
     parliament senate assembly congress court army navy police fire brigade team fc united trading shipping mining
     bakery mill mills factory foundry exchange market markets hotel inn restaurant cafe friends",
);

// Words that make a name a place.
list!(
    PLACE_CUES,
    "street road avenue lane square bridge river lake bay sea ocean island isle islands mountain mountains mount mt hill hills
     valley forest park harbour harbor port cape point coast fjord strait straits gulf peninsula city town village county
     province region district republic kingdom state station airport pass falls beach cove creek glacier desert marsh canal
     quay pier tower castle heath moor fields field head ness sound reef rock rocks bank lighthouse wharf dock docks
     highlands lowlands plains plateau delta basin archipelago headland estuary springs well wells crossing junction",
);

// First words that make a name a place ("New Harbour", "Lake Varn").
list!(PLACE_PREFIXES, "new north south east west upper lower great little saint st san santa los las el fort port lake mount mt cape isle");

// Nouns that name a place in "the town of X", "the fishing village of X".
list!(SETTLEMENT_NOUNS, "town city village hamlet parish landing county province district borough municipality island port region");

// Prepositions after which a lone capitalised word is most likely a place.
list!(PLACE_PREPOSITIONS, "in at from to near across toward towards outside inside around via into through past beyond");

// Common given names (a handful per language area) to type two-word names as people.
list!(
    FIRST_NAMES,
    "anna maria elena sofia emma olivia ava mia ella lena nora ida alma clara alice julia laura sara sarah hannah eva ingrid
     astrid karin kristin helga greta elsa freja maja linnea saga tove liv signe marta agnes helen helena ruth rose grace
     margaret elizabeth mary jane susan catherine katherine kate anne annie lucy emily charlotte amelia isabel isabella
     beatrice eleanor frances harriet irene judith louise martha nina rebecca rachel sophie victoria zoe fatima aisha leila
     yasmin mei ling yuki hana priya ananya chiara giulia francesca lucia carmen rosa ana ines pilar marta marie camille
     chloe manon lea amelie petra eva katarina olga irina natasha tatiana johan johannes jan jens lars nils olav ole per
     erik eric anders henrik magnus axel gustav karl carl oskar oscar emil hugo felix leo viktor victor sven bjorn stefan
     peter paul thomas tomas david daniel michael samuel benjamin jacob james john william henry george edward charles
     robert richard joseph frank arthur albert alfred walter harold frederick ernest thomas andrew anthony christopher
     matthew mark luke simon martin patrick sean liam noah oliver jack harry alexander max maximilian lukas jonas finn
     tobias mateo diego carlos juan jose luis miguel pablo antonio marco luca giovanni giuseppe matteo pierre jean luc
     louis francois antoine nicolas ahmed mohammed omar ali hassan yusuf ivan dmitri sergei mikhail pavel tomasz piotr
     wei jun hiroshi kenji raj arjun vikram rohan amir david elias isak isaac adam aaron ruben",
);

// Units after a number ("40 km", "3,400 tonnes", "12 per cent").
list!(
    UNITS,
    "km kilometre kilometres kilometer kilometers m metre metres meter meters cm mm mile miles ft foot feet inch inches yard
     yards kg kilogram kilograms kilo kilos g gram grams tonne tonnes ton tons lb lbs pound pounds oz ounce ounces l litre
     litres liter liters ml gallon gallons hectare hectares ha acre acres percent per cent degrees degree knots knot mph kmh
     kw mw gw kwh mwh watts volts hz hours hour minutes minute seconds second days day weeks week months month years year
     decades decade centuries century euro euros dollar dollars crowns kroner krona kronor francs franc yen yuan rupees
     rupee marks mark shillings pence cents guilders sq square cubic",
);

// Magnitude words after a number ("4.2 million").
list!(MAGNITUDES, "thousand million billion trillion hundred bn mn k m");

// Verbs that end in -s and would fool the "number + plural noun" rule ("in 1998 hosts ...").
list!(
    S_VERBS,
    "was is has does goes says makes takes gives comes seems remains becomes stands runs looks means lies plays shows
     follows includes contains appears leads falls rises sits sets puts gets keeps lets moves turns works lives dies
     opens closes begins ends starts marks hosts holds brings"
);

// Words before a quote that announce a title ("the novel "The Salt Road"").
list!(
    TITLE_CUES,
    "titled entitled called named book novel song film movie play poem album article report essay series column exhibition
     show paper painting opera story chapter magazine newspaper documentary collection memoir pamphlet headline lecture
     talk speech programme program episode"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case() {
        assert!(is(&STOPWORDS, "However"));
        assert!(is(&GENERIC_CAPS, "MONDAY"));
        assert!(!is(&STOPWORDS, "Varnholt"));
        assert!(is(&FIRST_NAMES, "Björn") == is(&FIRST_NAMES, "björn"));
    }
}
