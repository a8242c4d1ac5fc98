//! A 3x5 bitmap font for digits, enough to print labels under images without a font file.

/// Rows of each digit, 3 bits per row (bit 2 = left column).
const DIGITS: [[u8; 5]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b010, 0b010, 0b010],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];

/// Width of one glyph plus spacing, in font pixels.
pub const ADVANCE: usize = 4;
/// Height of a glyph, in font pixels.
pub const HEIGHT: usize = 5;

/// Whether font pixel `(x, y)` of `digit` is set; `None` for a character the font lacks.
pub fn digit_pixel(digit: char, x: usize, y: usize) -> Option<bool> {
    let d = digit.to_digit(10)? as usize;
    Some(x < 3 && y < HEIGHT && DIGITS[d][y] & (0b100 >> x) != 0)
}
