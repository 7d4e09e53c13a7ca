//! JSON text exactly as Envoy's transcoder (protobuf's JSON printer) writes it:
//! numbers in C's `%g` style (`1` for 1.0, `1e+21`, `1e-07`, floats at float
//! precision), non-finite floats as `"NaN"`/`"Infinity"` strings wherever they
//! occur (wrappers included), and `add_whitespace` as one-space indentation
//! followed by a newline.

use std::io;

use std::cmp::Ordering;

use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, SerializeOptions, Value};
use serde::ser::{self, Serialize, Serializer};
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};

/// Prints a value as JSON text: pretty (one-space indent and a final newline,
/// like protobuf's `add_whitespace`) or compact, numbers and non-finite floats
/// as protobuf prints them.
pub fn value_to_vec<T: Serialize + ?Sized>(pretty: bool, value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(128);
    if pretty {
        let mut ser =
            serde_json::Serializer::with_formatter(&mut out, ProtoFormatter(PrettyFormatter::with_indent(b" ")));
        value.serialize(NonFinite(&mut ser))?;
        out.push(b'\n');
    } else {
        let mut ser = serde_json::Serializer::with_formatter(&mut out, ProtoFormatter(CompactFormatter));
        value.serialize(NonFinite(&mut ser))?;
    }
    Ok(out)
}

/// A message with its proto3 JSON options, as a `Serialize` value.
pub struct MessageJson<'a>(pub &'a DynamicMessage, pub &'a SerializeOptions);

impl Serialize for MessageJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_with_options(serializer, self.1)
    }
}

// ---------------------------------------------------------------------------
// Map order. protobuf prints map entries (and Struct fields) sorted by key,
// integer keys numerically; prost-reflect keeps them in a HashMap, whose order
// is arbitrary. So a message holding a map with several entries is printed,
// read back and printed again with its maps sorted ([`sort_map_entries`]).

/// Whether a message holds (at any depth) a map with several entries.
pub fn has_multi_entry_maps(message: &DynamicMessage) -> bool {
    message.fields().any(|(_, value)| value_has_multi_entry_maps(value))
}

fn value_has_multi_entry_maps(value: &Value) -> bool {
    match value {
        Value::Map(entries) => entries.len() > 1 || entries.values().any(value_has_multi_entry_maps),
        Value::List(items) => items.iter().any(value_has_multi_entry_maps),
        Value::Message(message) => has_multi_entry_maps(message),
        _ => false,
    }
}

/// Sorts, in the printed JSON of a `desc` message, every map's entries by key
/// as protobuf does (Struct fields by name too). Field keys may be JSON or proto names.
pub fn sort_map_entries(desc: &MessageDescriptor, value: &mut serde_json::Value) {
    match desc.full_name() {
        "google.protobuf.Struct" | "google.protobuf.Value" | "google.protobuf.ListValue" => {
            return sort_struct_json(value)
        }
        name if name.starts_with("google.protobuf.") => return,
        _ => {}
    }
    let serde_json::Value::Object(object) = value else { return };
    for (key, item) in object.iter_mut() {
        let Some(field) = desc.get_field_by_json_name(key).or_else(|| desc.get_field_by_name(key)) else {
            continue;
        };
        let Kind::Message(message) = field.kind() else { continue };
        if field.is_map() {
            let serde_json::Value::Object(entries) = item else { continue };
            let numeric = !matches!(message.map_entry_key_field().kind(), Kind::String | Kind::Bool);
            sort_object(entries, |a, b| if numeric { compare_integers(a, b) } else { a.cmp(b) });
            if let Kind::Message(value_type) = message.map_entry_value_field().kind() {
                for entry in entries.values_mut() {
                    sort_map_entries(&value_type, entry);
                }
            }
        } else if let serde_json::Value::Array(items) = item {
            for element in items {
                sort_map_entries(&message, element);
            }
        } else {
            sort_map_entries(&message, item);
        }
    }
}

/// Struct / Value / ListValue JSON: every object is a Struct, sorted by name.
fn sort_struct_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(object) => {
            sort_object(object, |a, b| a.cmp(b));
            object.values_mut().for_each(sort_struct_json);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(sort_struct_json),
        _ => {}
    }
}

fn compare_integers(a: &str, b: &str) -> Ordering {
    match (a.parse::<i128>(), b.parse::<i128>()) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}

fn sort_object(object: &mut serde_json::Map<String, serde_json::Value>, compare: impl Fn(&str, &str) -> Ordering) {
    let mut entries: Vec<(String, serde_json::Value)> = std::mem::take(object).into_iter().collect();
    entries.sort_by(|(a, _), (b, _)| compare(a, b));
    object.extend(entries);
}

/// Formats a double as protobuf's `SimpleDtoa`: `%.15g`, or `%.17g` when that
/// does not read back as the same value.
pub fn format_double(value: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_double(&mut out, value);
    String::from_utf8(out).unwrap_or_default()
}

/// Formats a float as protobuf's `SimpleFtoa`: `%.6g`, or `%.9g` when that
/// does not read back as the same float.
pub fn format_float(value: f32) -> String {
    let mut out = Vec::with_capacity(16);
    write_float(&mut out, value);
    String::from_utf8(out).unwrap_or_default()
}

/// [`format_double`], appended to `out`.
pub fn write_double(out: &mut Vec<u8>, value: f64) {
    if value.is_normal() && from_shortest(out, ryu::Buffer::new().format_finite(value), 15, 17) {
        return;
    }
    let short = format_g(value, 15);
    if short.parse::<f64>().ok() == Some(value) {
        out.extend_from_slice(short.as_bytes());
    } else {
        out.extend_from_slice(format_g(value, 17).as_bytes());
    }
}

/// [`format_float`], appended to `out`.
pub fn write_float(out: &mut Vec<u8>, value: f32) {
    if value.is_normal() && from_shortest(out, ryu::Buffer::new().format_finite(value), 6, 9) {
        return;
    }
    let short = format_g(f64::from(value), 6);
    if short.parse::<f32>().ok() == Some(value) {
        out.extend_from_slice(short.as_bytes());
    } else {
        out.extend_from_slice(format_g(f64::from(value), 9).as_bytes());
    }
}

/// Appends `%.{short}g` (or `%.{long}g`) from the shortest digits that read
/// back as the value (ryu's), without formatting twice and reading back:
/// prices, scores and coordinates are the common case and this is their hot spot.
///
/// When the shortest digits number at most `short`, `%.{short}g` prints exactly
/// them: they lie within half a unit in the last place of the value, closer
/// than half a step of `short` digits, so they are its correct rounding. When
/// they number `long`, every `long`-digit rounding reads back and the shortest
/// is the closest, so `%.{long}g` prints them too. Lengths in between (16 for
/// a double, 7 or 8 for a float) are left to the caller (false, nothing
/// written), and so are subnormal values, whose unit in the last place is no
/// longer that small.
fn from_shortest(out: &mut Vec<u8>, shortest: &str, short: usize, long: usize) -> bool {
    let (negative, unsigned) = match shortest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, shortest),
    };
    let (mantissa, exponent) = match unsigned.split_once('e') {
        Some((m, e)) => match e.parse::<i32>() {
            Ok(e) => (m, e),
            Err(_) => return false,
        },
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The significant digits, and the value as 0.DIGITS × 10^point.
    let mut digits = [0u8; 24];
    let mut count = 0;
    let mut point = whole.len() as i32 + exponent;
    for &b in whole.as_bytes().iter().chain(fraction.as_bytes()) {
        if count == 0 && b == b'0' {
            point -= 1;
            continue;
        }
        if count == digits.len() {
            return false;
        }
        digits[count] = b;
        count += 1;
    }
    while count > 0 && digits[count - 1] == b'0' {
        count -= 1;
    }
    if count == 0 || (count > short && count != long) {
        return false;
    }
    let digits = &digits[..count];
    let precision = if count <= short { short } else { long } as i32;
    let scientific = point - 1; // the exponent of %e
    if negative {
        out.push(b'-');
    }
    if scientific < -4 || scientific >= precision {
        out.push(digits[0]);
        if count > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.extend_from_slice(if scientific < 0 { b"e-" } else { b"e+" });
        let magnitude = scientific.unsigned_abs();
        if magnitude >= 100 {
            out.push(b'0' + (magnitude / 100) as u8);
        }
        out.push(b'0' + (magnitude / 10 % 10) as u8);
        out.push(b'0' + (magnitude % 10) as u8);
    } else if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend((0..-point).map(|_| b'0'));
        out.extend_from_slice(digits);
    } else {
        let point = point as usize;
        if count <= point {
            out.extend_from_slice(digits);
            out.extend((count..point).map(|_| b'0'));
        } else {
            out.extend_from_slice(&digits[..point]);
            out.push(b'.');
            out.extend_from_slice(&digits[point..]);
        }
    }
    true
}

/// C's `printf("%.{precision}g", value)` for finite values.
fn format_g(value: f64, precision: usize) -> String {
    if value == 0.0 {
        return if value.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let precision = precision.max(1);
    // The exponent %g decides with is the one of the %e conversion, after rounding.
    let scientific = format!("{:.*e}", precision - 1, value);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if exponent < -4 || exponent >= precision as i32 {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip_fraction_zeros(mantissa), exponent.unsigned_abs())
    } else {
        let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
        strip_fraction_zeros(&format!("{value:.decimals$}")).to_string()
    }
}

fn strip_fraction_zeros(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

/// A serde_json formatter that writes floats like protobuf and otherwise
/// behaves as the formatter it wraps.
#[derive(Debug, Clone)]
pub struct ProtoFormatter<F>(pub F);

impl<F: Formatter> Formatter for ProtoFormatter<F> {
    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        let mut out = Vec::with_capacity(16);
        write_float(&mut out, value);
        writer.write_all(&out)
    }
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        let mut out = Vec::with_capacity(24);
        write_double(&mut out, value);
        writer.write_all(&out)
    }
    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_array(writer)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array(writer)
    }
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(writer, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array_value(writer)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object(writer)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object(writer)
    }
    fn begin_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(writer, first)
    }
    fn end_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_key(writer)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object_value(writer)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_value(writer)
    }
}

// ---------------------------------------------------------------------------
// NonFinite: a Serializer adapter that writes NaN and ±Infinity as the strings
// proto3 JSON uses. prost-reflect does so for plain float fields but hands the
// raw value to serialize_f32/f64 for FloatValue/DoubleValue wrappers, which
// serde_json would print as `null` (an unset wrapper, so the value would be lost).

fn non_finite_name(value: f64) -> &'static str {
    if value.is_nan() {
        "NaN"
    } else if value > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// See the section comment: wraps a Serializer, and every nested one.
pub struct NonFinite<S>(pub S);

/// A value serialized through [`NonFinite`].
struct Wrap<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for Wrap<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(NonFinite(serializer))
    }
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $method(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> { self.0.$method($($arg),*) })*
    };
}

impl<S: Serializer> Serializer for NonFinite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = NonFinite<S::SerializeSeq>;
    type SerializeTuple = NonFinite<S::SerializeTuple>;
    type SerializeTupleStruct = NonFinite<S::SerializeTupleStruct>;
    type SerializeTupleVariant = NonFinite<S::SerializeTupleVariant>;
    type SerializeMap = NonFinite<S::SerializeMap>;
    type SerializeStruct = NonFinite<S::SerializeStruct>;
    type SerializeStructVariant = NonFinite<S::SerializeStructVariant>;

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            self.0.serialize_f32(v)
        } else {
            self.0.serialize_str(non_finite_name(f64::from(v)))
        }
    }
    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            self.0.serialize_f64(v)
        } else {
            self.0.serialize_str(non_finite_name(v))
        }
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Wrap(value))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Wrap(value))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_variant(name, index, variant, &Wrap(value))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(NonFinite)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(NonFinite)
    }
    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len).map(NonFinite)
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0.serialize_tuple_variant(name, index, variant, len).map(NonFinite)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.0.serialize_map(len).map(NonFinite)
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len).map(NonFinite)
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0.serialize_struct_variant(name, index, variant, len).map(NonFinite)
    }
    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

impl<S: ser::SerializeSeq> ser::SerializeSeq for NonFinite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_element(&Wrap(value))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeTuple> ser::SerializeTuple for NonFinite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_element(&Wrap(value))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeTupleStruct> ser::SerializeTupleStruct for NonFinite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_field(&Wrap(value))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeTupleVariant> ser::SerializeTupleVariant for NonFinite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_field(&Wrap(value))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeMap> ser::SerializeMap for NonFinite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        self.0.serialize_key(&Wrap(key))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_value(&Wrap(value))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeStruct> ser::SerializeStruct for NonFinite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), S::Error> {
        self.0.serialize_field(key, &Wrap(value))
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.0.skip_field(key)
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeStructVariant> ser::SerializeStructVariant for NonFinite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), S::Error> {
        self.0.serialize_field(key, &Wrap(value))
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.0.skip_field(key)
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn numbers_print_like_protobuf() {
        for (value, text) in [
            (1.0, "1"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1e-7, "1e-07"),
            (1.5e300, "1.5e+300"),
            (123456789.125, "123456789.125"),
            (-2.5, "-2.5"),
            (1e15, "1e+15"),
            (123456789012345.0, "123456789012345"),
            (0.0001, "0.0001"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::MAX, "1.7976931348623157e+308"),
        ] {
            assert_eq!(format_double(value), text, "{value:e}");
        }
        for (value, text) in [
            (1.0f32, "1"),
            (0.1, "0.1"),
            (123456789.125, "123456792"),
            (3.3, "3.3"),
            (1e-7, "1e-07"),
            (f32::MAX, "3.40282347e+38"),
        ] {
            assert_eq!(format_float(value), text, "{value:e}");
        }
    }

    /// protobuf's rule, spelled out: `%.15g` unless it does not read back, then `%.17g`.
    fn reference_double(value: f64) -> String {
        let short = format_g(value, 15);
        if short.parse::<f64>().ok() == Some(value) {
            short
        } else {
            format_g(value, 17)
        }
    }

    fn reference_float(value: f32) -> String {
        let short = format_g(f64::from(value), 6);
        if short.parse::<f32>().ok() == Some(value) {
            short
        } else {
            format_g(f64::from(value), 9)
        }
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn the_shortest_digits_print_as_protobuf_prints() {
        // RGP_FORMAT_ROUNDS=2000000 for a long run (done once: no difference).
        let rounds: usize = option_env!("RGP_FORMAT_ROUNDS").and_then(|r| r.parse().ok()).unwrap_or(20_000);
        let mut next = crate::test_rng::xorshift(0x5eed_f10a7);
        let mut doubles: Vec<f64> = vec![
            16.99,
            16.990000000000002,
            0.1 + 0.2,
            1e15,
            1e16,
            1e17,
            123456789012345.6,
            1e-5,
            1e-4,
            9.999999999999999e-5,
            5e-324,
            f64::MIN_POSITIVE,
            2f64.powi(60),
            2f64.powi(53) + 2.0,
            100.0,
            1234.5,
        ];
        for _ in 0..rounds {
            let bits = next();
            doubles.push(f64::from_bits(bits));
            // Prices, coordinates, scores: short decimals and their sums.
            let cents = (bits % 10_000_000) as f64 / 100.0;
            doubles.push(cents);
            doubles.push(cents * 3.0 + 0.07);
            doubles.push(-(((bits >> 20) % 1_000_000_000) as f64) / 1e6);
        }
        for value in doubles.into_iter().filter(|v| v.is_finite()) {
            assert_eq!(format_double(value), reference_double(value), "{value:e}");
            let float = value as f32;
            if float.is_finite() {
                assert_eq!(format_float(float), reference_float(float), "{float:e}");
            }
        }
        for _ in 0..rounds {
            let float = f32::from_bits(next() as u32);
            if float.is_finite() {
                assert_eq!(format_float(float), reference_float(float), "{float:e}");
            }
        }
    }
}
