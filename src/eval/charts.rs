//! PNG charts of an evaluation report (plotters, bitmap backend): recall by distance, the two
//! objectives before/after, and scores by entity type, each with 95 % bootstrap error bars.
//! Text is drawn with egui's bundled font, so no system font is needed (CI, headless machines).

use super::report::{ModelReport, Scores};
use anyhow::{Result, anyhow};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

const SIZE: (u32, u32) = (900, 540);
const COLORS: [RGBColor; 4] = [RGBColor(120, 120, 120), RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44)];

/// Registers egui's default proportional font as plotters' "sans-serif" (once per process).
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let defs = egui::FontDefinitions::default();
        let name = defs.families.get(&egui::FontFamily::Proportional).and_then(|f| f.first()).cloned();
        if let Some(data) = name.and_then(|n| defs.font_data.get(&n).cloned()) {
            let bytes: &'static [u8] = Box::leak((*data.font).as_ref().to_vec().into_boxed_slice());
            let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, bytes);
        }
    });
}

fn err<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> anyhow::Error + '_ {
    move |e| anyhow!("cannot draw {}: {e:?}", path.display())
}

/// Line chart of recall exact match against distance, one line per model, with error bars.
pub fn recall_by_distance(path: &Path, models: &[&ModelReport]) -> Result<()> {
    let e = err(path);
    let max_d = models.iter().flat_map(|m| m.recall_by_distance.keys()).copied().max().unwrap_or(0);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Intermediate-memory recall by distance (exact match, 95% CI)", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.3f32..max_d as f32 + 0.3, 0f32..1f32)
        .map_err(&e)?;
    chart.configure_mesh().x_desc("memory updates since the fact was read").y_desc("recall EM").x_labels(max_d + 2).x_label_formatter(&|x| format!("{:.0}", x)).draw().map_err(&e)?;
    for (i, m) in models.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let shift = (i as f32 - (models.len() - 1) as f32 / 2.0) * 0.06;
        let pts: Vec<(f32, &Scores)> = m.recall_by_distance.iter().map(|(d, s)| (*d as f32 + shift, s)).collect();
        chart
            .draw_series(LineSeries::new(pts.iter().map(|(x, s)| (*x, s.exact_match.mean)), color.stroke_width(3)))
            .map_err(&e)?
            .label(format!("{} (n={})", m.model, m.recall.exact_match.n))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
        chart
            .draw_series(pts.iter().map(|(x, s)| ErrorBar::new_vertical(*x, s.exact_match.low, s.exact_match.mean, s.exact_match.high, color.filled(), 8)))
            .map_err(&e)?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.9)).border_style(BLACK).draw().map_err(&e)?;
    root.present().map_err(&e)?;
    Ok(())
}

/// Grouped bars: for each group label, one bar per model (mean and error bar).
fn bars(path: &Path, title: &str, y_desc: &str, groups: &[String], models: &[&ModelReport], value: impl Fn(&ModelReport, &str) -> Option<Scores>) -> Result<()> {
    let e = err(path);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f32..groups.len() as f32, 0f32..1f32)
        .map_err(&e)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(y_desc)
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < groups.len() { groups[i].clone() } else { String::new() }
        })
        .draw()
        .map_err(&e)?;
    let width = 0.8 / models.len().max(1) as f32;
    for (i, m) in models.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let cells: Vec<(f32, Scores)> = groups.iter().enumerate().filter_map(|(g, key)| value(m, key).map(|s| (g as f32 + 0.1 + width * i as f32, s))).collect();
        chart
            .draw_series(cells.iter().map(|(x, s)| Rectangle::new([(*x, 0.0), (*x + width * 0.9, s.exact_match.mean)], color.filled())))
            .map_err(&e)?
            .label(m.model.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
        chart
            .draw_series(cells.iter().map(|(x, s)| ErrorBar::new_vertical(*x + width * 0.45, s.exact_match.low, s.exact_match.mean, s.exact_match.high, BLACK.stroke_width(2), 10)))
            .map_err(&e)?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.9)).border_style(BLACK).draw().map_err(&e)?;
    root.present().map_err(&e)?;
    Ok(())
}

/// Writes recall_by_distance.png, objectives.png and entity_types.png into `dir`.
pub fn write_all(dir: &Path, models: &[&ModelReport]) -> Result<()> {
    register_font();
    recall_by_distance(&dir.join("recall_by_distance.png"), models)?;
    // Each bar's label beside the score it draws.
    let objectives: [(&str, fn(&ModelReport) -> &Scores); 3] = [
        ("masked entity (obj. 1)", |m| &m.masked),
        ("memory recall (obj. 2)", |m| &m.recall),
        ("obj. 1 from the teacher's memory", |m| &m.masked_from_teacher_memory),
    ];
    let labels = objectives.map(|(label, _)| label.to_string());
    bars(&dir.join("objectives.png"), "Exact match per objective (95% CI)", "exact match", &labels, models, |m, key| {
        objectives.iter().find(|(label, _)| *label == key).map(|(_, score)| score(m).clone())
    })?;
    let mut types: Vec<String> = models.iter().flat_map(|m| m.by_entity_type.keys().cloned()).collect();
    types.sort();
    types.dedup();
    bars(&dir.join("entity_types.png"), "Exact match by entity type, both objectives (95% CI)", "exact match", &types, models, |m, key| m.by_entity_type.get(key).cloned())
}
