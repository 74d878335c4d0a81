//! Small self-contained SVG charts for the HTML report: line charts and bar charts with axes,
//! ticks and a legend, no scripts and no external assets.

use std::fmt::Write;

/// One line of a line chart.
pub(crate) struct Series<'a> {
    pub name: &'a str,
    pub colour: &'a str,
    /// Dashed lines mark baselines.
    pub dashed: bool,
    /// Points; `None` breaks the line.
    pub points: Vec<Option<(f64, f64)>>,
}

const W: f64 = 640.0;
const H: f64 = 300.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 46.0;

/// Escapes text for SVG and HTML.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" tick step for a range.
fn step(range: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction < 1.5 {
        1.0
    } else if fraction < 3.5 {
        2.0
    } else if fraction < 7.5 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn label(value: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{value:.0}")
    } else {
        let decimals = (-step.log10().floor()) as usize;
        format!("{value:.decimals$}")
    }
}

fn frame(out: &mut String, title: &str, x_label: &str, y_label: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(out, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = write!(
        out,
        r#"<text x="{}" y="18" font-size="14" font-weight="bold" text-anchor="middle">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 8.0,
        escape(x_label)
    );
    let _ = write!(
        out,
        r#"<text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"#,
        TOP + (H - TOP - BOTTOM) / 2.0,
        TOP + (H - TOP - BOTTOM) / 2.0,
        escape(y_label)
    );
}

/// Axes with ticks; returns the functions mapping data to pixels.
fn axes(
    out: &mut String,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> (impl Fn(f64) -> f64, impl Fn(f64) -> f64) {
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let xr = if x1 > x0 { x1 - x0 } else { 1.0 };
    let yr = if y1 > y0 { y1 - y0 } else { 1.0 };
    let px = move |x: f64| LEFT + (x - x0) / xr * pw;
    let py = move |y: f64| TOP + ph - (y - y0) / yr * ph;
    let ys = step(yr);
    let mut y = (y0 / ys).ceil() * ys;
    while y <= y1 + ys * 1e-9 {
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{0}" y1="{1:.1}" y2="{1:.1}" stroke="#e4e4e4"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
            W - RIGHT,
            py(y),
            LEFT - 6.0,
            py(y) + 4.0,
            label(y, ys)
        );
        y += ys;
    }
    let xs = step(xr);
    let mut x = (x0 / xs).ceil() * xs;
    while x <= x1 + xs * 1e-9 {
        let _ = write!(
            out,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{1}" y2="{2}" stroke="#999"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4}</text>"##,
            px(x),
            TOP + ph,
            TOP + ph + 4.0,
            TOP + ph + 16.0,
            label(x, xs)
        );
        x += xs;
    }
    let _ = write!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##
    );
    (px, py)
}

fn legend(out: &mut String, entries: &[(&str, &str, bool)]) {
    let mut x = LEFT + 8.0;
    for (name, colour, dashed) in entries {
        let dash = if *dashed {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<line x1="{x}" x2="{}" y1="{}" y2="{}" stroke="{colour}" stroke-width="2.5"{dash}/><text x="{}" y="{}">{}</text>"#,
            x + 18.0,
            TOP + 12.0,
            TOP + 12.0,
            x + 22.0,
            TOP + 16.0,
            escape(name)
        );
        x += 30.0 + 6.5 * name.len() as f64;
    }
}

/// A line chart of `series`, y from `y_min` (or the data's minimum) to the data's maximum.
pub(crate) fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    y_min: Option<f64>,
    series: &[Series<'_>],
) -> String {
    let points = || series.iter().flat_map(|s| s.points.iter().flatten());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if let Some(min) = y_min {
        y0 = min;
    }
    // Headroom for the legend.
    y1 += (y1 - y0).max(1e-9) * 0.18;
    let mut out = String::new();
    frame(&mut out, title, x_label, y_label);
    let (px, py) = axes(&mut out, (x0, x1), (y0, y1));
    for s in series {
        let dash = if s.dashed {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        let mut path = String::new();
        let mut pen_down = false;
        for p in &s.points {
            match p {
                Some((x, y)) => {
                    let _ = write!(
                        path,
                        "{}{:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        px(*x),
                        py(*y)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = write!(
            out,
            r#"<path d="{path}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            s.colour
        );
    }
    let entries: Vec<_> = series
        .iter()
        .map(|s| (s.name, s.colour, s.dashed))
        .collect();
    legend(&mut out, &entries);
    out.push_str("</svg>");
    out
}

/// A bar chart: one group per label, one bar per series in each group.
pub(crate) fn bar_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    labels: &[String],
    series: &[(&str, &str, Vec<f64>)],
) -> String {
    let y1 = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().cloned())
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.2;
    let mut out = String::new();
    frame(&mut out, title, x_label, y_label);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let py = |y: f64| TOP + ph - y / y1 * ph;
    let ys = step(y1);
    let mut y = 0.0;
    while y <= y1 {
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{0}" y1="{1:.1}" y2="{1:.1}" stroke="#e4e4e4"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
            W - RIGHT,
            py(y),
            LEFT - 6.0,
            py(y) + 4.0,
            label(y, ys)
        );
        y += ys;
    }
    let groups = labels.len().max(1) as f64;
    let group_w = pw / groups;
    let bar_w = group_w * 0.8 / series.len().max(1) as f64;
    for (g, name) in labels.iter().enumerate() {
        let gx = LEFT + g as f64 * group_w + group_w * 0.1;
        for (i, (_, colour, values)) in series.iter().enumerate() {
            let v = values.get(g).copied().unwrap_or(0.0);
            let _ = write!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{v:.0}</title></rect>"#,
                gx + i as f64 * bar_w,
                py(v),
                bar_w * 0.92,
                TOP + ph - py(v)
            );
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            gx + group_w * 0.4,
            TOP + ph + 16.0,
            escape(name)
        );
    }
    let _ = write!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##
    );
    let entries: Vec<_> = series.iter().map(|(n, c, _)| (*n, *c, false)).collect();
    legend(&mut out, &entries);
    out.push_str("</svg>");
    out
}

/// One estimate with its interval, beside the true value.
pub(crate) struct Interval {
    pub x: f64,
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
    pub truth: f64,
    /// Index into the chart's series names and colours.
    pub series: usize,
}

/// Estimates as dots with their intervals as bars, and the true values as black rings.
pub(crate) fn interval_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, &str)],
    points: &[Interval],
) -> String {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in points {
        x0 = x0.min(p.x);
        x1 = x1.max(p.x);
        y0 = y0.min(p.lower.min(p.truth));
        y1 = y1.max(p.upper.max(p.truth));
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let (x0, x1) = (x0 - 0.5, x1 + 0.5);
    y1 += (y1 - y0).max(1e-9) * 0.18;
    let mut out = String::new();
    frame(&mut out, title, x_label, y_label);
    let (px, py) = axes(&mut out, (x0, x1), (y0, y1));
    if y0 < 0.0 && y1 > 0.0 {
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{1:.1}" y2="{1:.1}" stroke="#666"/>"##,
            W - RIGHT,
            py(0.0)
        );
    }
    for p in points {
        let colour = series.get(p.series).map_or("#1f77b4", |s| s.1);
        let _ = write!(
            out,
            r#"<line x1="{0:.1}" x2="{0:.1}" y1="{1:.1}" y2="{2:.1}" stroke="{colour}" stroke-width="2"/><circle cx="{0:.1}" cy="{3:.1}" r="3" fill="{colour}"/><circle cx="{0:.1}" cy="{4:.1}" r="4" fill="none" stroke="black" stroke-width="1.5"/>"#,
            px(p.x),
            py(p.lower),
            py(p.upper),
            py(p.estimate),
            py(p.truth)
        );
    }
    let mut entries: Vec<(&str, &str, bool)> =
        series.iter().map(|(n, c)| (*n, *c, false)).collect();
    entries.push(("truth (ring)", "black", false));
    legend(&mut out, &entries);
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_self_contained_svg() {
        let line = line_chart(
            "a <title>",
            "x",
            "y",
            Some(0.0),
            &[Series {
                name: "s",
                colour: "#000",
                dashed: true,
                points: vec![Some((0.0, 1.0)), None, Some((2.0, 3.0))],
            }],
        );
        assert!(line.starts_with("<svg") && line.ends_with("</svg>"));
        assert!(line.contains("a &lt;title&gt;"));
        assert_eq!(line.matches(" M").count() + line.matches("\"M").count(), 2);
        assert!(!line.contains("<script") && !line.contains("href"));
        let bars = bar_chart("b", "x", "y", &["d1".into()], &[("s", "#000", vec![5.0])]);
        assert!(bars.contains("<rect x=") && bars.contains("d1"));
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(step(10.0), 2.0);
        assert_eq!(step(0.3), 0.05);
        assert_eq!(label(0.05, 0.05), "0.05");
    }
}
