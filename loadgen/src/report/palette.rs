//! The colours of the plots: ten that stay apart from each other and read on white, one per
//! server. plotters' `Palette99` has yellow and pale cyan among its first ten, which vanish
//! on a white page; these are the Tableau 10 hues with the light ones (olive, cyan, pink,
//! orange) darkened until each reaches 3:1 contrast against white, and brown moved away from
//! grey.

use plotters::style::RGBColor;

/// The colours, in the order servers get them (their labels sorted).
pub const COLOURS: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4), // blue
    RGBColor(0xd6, 0x27, 0x28), // red
    RGBColor(0x2c, 0xa0, 0x2c), // green
    RGBColor(0xe0, 0x6c, 0x00), // orange, darkened
    RGBColor(0x94, 0x67, 0xbd), // purple
    RGBColor(0xa0, 0x52, 0x2d), // sienna brown
    RGBColor(0xc4, 0x3c, 0x9c), // pink, darkened
    RGBColor(0x4d, 0x4d, 0x4d), // dark grey
    RGBColor(0x80, 0x80, 0x00), // olive, darkened
    RGBColor(0x00, 0x80, 0x80), // teal, darkened cyan
];

/// The colour of the server with index `i` among the labels; past ten they repeat.
pub fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative luminance (WCAG 2) of a colour.
    fn luminance(c: RGBColor) -> f64 {
        let channel = |v: u8| {
            let v = f64::from(v) / 255.0;
            if v <= 0.03928 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(c.0) + 0.7152 * channel(c.1) + 0.0722 * channel(c.2)
    }

    /// Every colour reaches a contrast of 3:1 against white (WCAG's floor for graphics), so no
    /// line is faint; and no two colours are near each other.
    #[test]
    fn colours_read_on_white_and_stay_apart() {
        for c in COLOURS {
            let contrast = 1.05 / (luminance(c) + 0.05);
            assert!(
                contrast >= 3.0,
                "{c:?}: contrast {contrast:.2} against white"
            );
        }
        for (i, a) in COLOURS.iter().enumerate() {
            for b in &COLOURS[i + 1..] {
                let distance = (f64::from(a.0) - f64::from(b.0)).abs()
                    + (f64::from(a.1) - f64::from(b.1)).abs()
                    + (f64::from(a.2) - f64::from(b.2)).abs();
                assert!(distance >= 90.0, "{a:?} and {b:?} are too close");
            }
        }
    }
}
