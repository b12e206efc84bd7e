//! Can the sensor evaluate a rule as written? Log source, fields and modifiers are checked at load
//! so that a rule that could never fire (or whose filters could never apply) is reported with
//! the reason instead of silently doing nothing.

use rsigma_parser::{
    CorrelationRule, CorrelationType, Detection, Detections, LogSource, Modifier, SigmaValue,
};

use super::{category::Category, fields};

/// The category a rule's log source names (`None`: every category), or why the sensor does not
/// produce that log source.
pub fn logsource(ls: &LogSource) -> Result<Option<Category>, String> {
    if let Some(product) = &ls.product
        && !product.eq_ignore_ascii_case("linux")
    {
        return Err(format!("log source product `{product}`: this sensor produces linux records only"));
    }
    if let Some(service) = &ls.service {
        return Err(format!(
            "log source service `{service}`: the sensor reads the kernel, not {service} logs \
             (rewrite the rule for a category such as process_creation or file_event)"
        ));
    }
    match &ls.category {
        None if ls.product.is_none() => Err("log source names neither product nor category".into()),
        None => Ok(None),
        Some(c) => Category::from_name(c).map(Some).ok_or_else(|| {
            let known: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
            format!(
                "log source category `{c}` is not produced by this sensor (it produces: {})",
                known.join(", ")
            )
        }),
    }
}

/// Every field the detection uses must be one the sensor provides for the rule's category, and
/// every modifier one the engine can apply to the sensor's records.
pub fn fields(d: &Detections, category: Option<Category>) -> Result<(), String> {
    let mut problems = Vec::new();
    for det in d.named.values() {
        walk(det, category, &mut problems);
    }
    problems.sort();
    problems.dedup();
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

fn walk(det: &Detection, category: Option<Category>, problems: &mut Vec<String>) {
    match det {
        Detection::AllOf(items) => {
            for item in items {
                if let Some(name) = &item.field.name {
                    check_field(name, category, problems);
                    if item.field.modifiers.contains(&Modifier::FieldRef) {
                        for v in &item.values {
                            if let SigmaValue::String(s) = v {
                                check_field(&s.original, category, problems);
                            }
                        }
                    }
                }
                for m in &item.field.modifiers {
                    if let Some(reason) = modifier_problem(m) {
                        problems.push(reason);
                    }
                }
            }
        }
        Detection::AnyOf(ds) | Detection::And(ds) => ds.iter().for_each(|d| walk(d, category, problems)),
        Detection::Keywords(_) => {}
        Detection::ArrayMatch { field, body, .. } => {
            check_field(field, category, problems);
            walk(body, category, problems);
        }
        Detection::Conditional { named, .. } => named.values().for_each(|d| walk(d, category, problems)),
    }
}

fn check_field(name: &str, category: Option<Category>, problems: &mut Vec<String>) {
    match (fields::lookup(name), category) {
        (None, _) => problems.push(unknown_field(name)),
        (Some(f), Some(c)) if !f.scope.covers(c) => {
            problems.push(format!(
                "field `{name}` is not present on {c} records (only on: {})",
                f.scope.describe()
            ));
        }
        (Some(_), _) => {}
    }
}

fn unknown_field(name: &str) -> String {
    match name {
        "DestinationHostname" => "field `DestinationHostname` is not provided: the sensor records DNS queries \
                                  (`dns_query`, QueryName), not the answers that would name a connection's host"
            .into(),
        _ => format!("field `{name}` is not provided by this sensor (see `sensor rules fields`)"),
    }
}

/// Modifiers that cannot work on the sensor's records.
fn modifier_problem(m: &Modifier) -> Option<String> {
    match m {
        Modifier::Expand => {
            Some("modifier `expand` needs placeholder values, which the sensor does not configure".into())
        }
        Modifier::Minute
        | Modifier::Hour
        | Modifier::Day
        | Modifier::Week
        | Modifier::Month
        | Modifier::Year => Some(format!(
            "modifier `{m:?}` needs a timestamp field, which the sensor's field mapping has not"
        )),
        _ => None,
    }
}

/// The correlation types the sensor evaluates (the and Sigma's core three, and the
/// ordered variant of temporal).
pub fn correlation(c: &CorrelationRule) -> Result<(), String> {
    match c.correlation_type {
        CorrelationType::EventCount
        | CorrelationType::ValueCount
        | CorrelationType::Temporal
        | CorrelationType::TemporalOrdered => {}
        other => {
            return Err(format!(
                "correlation type `{}` is not supported (event_count, value_count, temporal, temporal_ordered are)",
                other.as_str()
            ));
        }
    }
    let mut problems = Vec::new();
    for g in &c.group_by {
        if fields::lookup(g).is_none() && !c.aliases.iter().any(|a| a.alias == *g) {
            problems.push(format!("group-by {}", unknown_field(g)));
        }
    }
    for a in &c.aliases {
        for field in a.mapping.values() {
            if fields::lookup(field).is_none() {
                problems.push(format!("alias `{}`: {}", a.alias, unknown_field(field)));
            }
        }
    }
    if c.timespan.seconds == 0 {
        problems.push("timespan must be at least one second".into());
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

/// Name of a correlation type as the alert shows it.
pub fn correlation_type_name(t: CorrelationType) -> &'static str {
    t.as_str()
}
