// Package rules is Vigil's clinical logic: NEWS2, thresholds, trends,
// glucose levels, CGM summaries and device conditions. It is pure: it does
// no I/O, keeps no global state and never reads a clock; time comes in the
// inputs (reading times, and the now of Tick).
//
// The alerting engine feeds each patient's readings, in the order it
// receives them, to PatientState.Apply and calls PatientState.Tick as time
// passes. Both return the Conditions whose state changed (became active,
// changed priority or score, or cleared); the engine turns them into alerts
// (open, update, resolve). A PatientState is serialisable with encoding/json
// so that the engine can checkpoint it with the log position of the last
// reading applied and resume after a crash without missing or repeating a
// condition.
//
// Clinical sources are cited in comments as [clinical.md], or with the
// anchor of a section as in [clinical.md#news2]: docs/clinical.md, the
// project's clinical reference, which names the primary sources: the Royal
// College of Physicians' NEWS2 (2017), the international consensus on CGM
// Time in Range (Diabetes Care 2019;42:1593), Bergenstal's GMI (2018), the
// ADA's hypoglycaemia levels and the alarm priorities of IEC 60601-1-8.
// Choices of Vigil's own, not taken from those sources, are
// marked [choice] and are configurable.
//
// # Which readings count
//
// A reading flagged with any quality flag in Config.Exclude (by default
// questionable, artifact, sensor-off and calibrating) is not used for NEWS2,
// thresholds, trends or glucose: a value the device itself doubts must not
// raise, or clear, a clinical condition. Such readings still count as the
// device reporting (they end a silence), a sensor-off flag raises the
// device's sensor condition, and a questionable flag raises an
// information-only data-quality condition.
//
// Panels count through their components: a blood pressure panel 85354-9
// gives its systolic 8480-6 and diastolic 8462-4 to every rule that names
// those codes, exactly as a stand-alone 8480-6 reading does.
//
// # NEWS2
//
// NEWS2 is scored on the newest fresh value of each parameter, as on the
// RCP's chart (smoothing only suppresses a single artifact in a monitor
// stream; see NEWS2Config.Smoothing). The NEWS2 condition carries the score
// of every evaluation; PatientState.TakeNEWS2 hands out each changed score
// once it has settled (NEWS2Config.Settle), for storing as a derived
// reading (Score.Reading) that names its inputs and its missing or stale
// parameters. Both come from the same evaluation, so the stored score and
// the alert's agree.
//
// # Order and duplicates
//
// Apply evaluates each code's readings in effective-time order. A reading
// not newer than the last applied reading of the same code is a duplicate
// (same time and key: ignored entirely) or late (an older time, or the same
// time with another key: it keeps the device from looking silent but is not
// evaluated, because newer information about that code has already been
// acted on). This makes Apply idempotent with a bounded state: one time and
// the keys at that time per code.
package rules
