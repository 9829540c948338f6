// Package reconcile matches a processor's settlement report against the
// ledger, for finance staff.
//
// A [Reader] streams the rows of a report; [Run] looks each row up through
// the small [Ledger] interface, classifies it, then lists the ledger's
// transactions the report left out, and returns a [Summary] of counts,
// per-currency totals and the first exceptions. [WriteExceptionsCSV] and
// [ExceptionWriter] export exceptions for spreadsheets.
//
// # Formats
//
// [FormatGeneric] is paytrail's settlement CSV: a header row, then lines with
// transaction_id, merchant_id, type (charge, refund, chargeback), amount (a
// decimal in major units: 19.99, 1500 for JPY, 1.234 for KWD), currency (ISO
// 4217, any case) and settled_at (RFC 3339), in any column order; other
// columns are ignored. A refund or chargeback amount may carry a leading
// '-'; a charge may not.
//
// [FormatStripe] is Stripe's itemized balance change report
// (balance_change_from_activity.itemized.3). Rows with reporting_category
// charge, refund and dispute are reconciled (dispute as chargeback); every
// other category (fee, payout, transfer, dispute_reversal, ...) is skipped
// and counted in [Summary.Skipped]. A row's transaction id is its
// payment_intent_id, else charge_id, else source_id, and charge_id is also
// tried as an alt id; its merchant is connected_account, else the reader's
// default merchant; its amount is |gross|, where gross must be ≥ 0 for a
// charge and ≤ 0 for a refund or dispute; its settled_at is created_utc
// ("2006-01-02 15:04:05" in UTC, or RFC 3339).
//
// Both formats are strict: every line has the header's number of fields,
// amounts have no more decimals than the currency allows, a physical line is
// at most 1 MiB, and a problem anywhere fails the whole run with a
// [*LineError] naming the line (header = 1) and column but never the value.
// A caller stores nothing from a run that failed.
//
// # Matching
//
// Each row is classified exactly once, in this order:
//
//   - out_of_scope: Options.InScope rejects the row's merchant. The ledger is
//     not consulted, so the exception reveals nothing about it.
//   - The transaction is looked up by the row's id, then its alt ids. A
//     transaction of a different merchant than the row's counts as not
//     found.
//   - duplicate_in_report: an earlier row had the same transaction and type
//     (the earlier row is classified normally).
//   - missing_in_ledger: not found.
//   - currency_mismatch: the ledger's currency differs.
//   - status_mismatch: the ledger's amount for the row's type is zero and
//     its status rules that movement out: a charge row needs status
//     captured, settled, refunded, partially_refunded or chargeback; a
//     refund row refunded or partially_refunded; a chargeback row
//     chargeback.
//   - amount_mismatch: the row's amount differs from the ledger's amount for
//     its type: captured for a charge, the cumulative refunded amount for a
//     refund, the charged-back amount for a chargeback.
//   - matched.
//
// Rows that are single movements (Row.Movement: Stripe lists each partial
// refund and dispute as its own row) are summed per transaction and type,
// and the sum is compared after the last row; every row of the sum gets its
// outcome, and the same movement twice is duplicate_in_report.
//
// After the last row, missing_in_report lists every ledger transaction of
// the merchants of the in-scope rows captured within the period that no
// charge row named (by its id or an alt id): a refund or chargeback row for
// it does not stand in for its missing capture. The period is [Options.From,
// Options.To), each bound defaulting to the earliest settled_at of the
// in-scope rows and the latest plus one nanosecond.
//
// # Totals
//
// [Summary.Totals] holds, per currency and never across currencies, two
// signed sums in minor units, charges positive, refunds and chargebacks
// negative:
//
//   - report: the amount of every in-scope row, duplicates included, in the
//     row's currency;
//   - ledger: for every in-scope row that is not a duplicate and whose
//     transaction was found, the ledger's amount for the row's type in the
//     ledger's currency; plus the captured amount of every missing_in_report
//     transaction.
//
// So matched rows add the same to both sides, and the difference between
// the sides is accounted for by the exceptions.
//
// # The ledger, and storing runs
//
// [NewSnapshot] implements [Ledger] over a consistent snapshot of a
// *ledger.Ledger: transactions come from its derived transaction state (by
// id, or by alt id such as a Stripe charge id) and captures from its
// per-merchant index of capture times. It also lists captured ids without
// loading each transaction, so missing_in_report loads only the few
// transactions the report did not name.
//
// [RunAndStore] is what the API and `paytrail reconcile` call: it hashes
// the report as it streams, runs against a [Snapshot] (so the run sees the
// ledger as of one tree size, recorded as LedgerSize), and appends the run
// as one ledger.KindReconciliation entry whose body is a [RunBody]: the
// report's SHA-256 and size, format, operator and scope, the summary, at
// most [MaxStoredExceptions] exceptions, their total count and the SHA-256
// of the complete exceptions CSV. The entry's record id is the run id;
// [LoadRun] reads a run back and [RunBody.VisibleTo] decides who may see it.
// A run that fails stores nothing.
//
// # Memory
//
// Run keeps one map entry per distinct in-scope transaction of the report (a
// 128-bit SHA-256 prefix of its id and a byte of row types seen, about 40
// bytes), the set of merchants, one total per currency and at most
// Options.MaxExceptions exceptions; rows themselves are streamed. A report
// of a million rows against a ledger of a million transactions peaks below
// 100 MB of RSS for this package (BenchmarkRun1M), and at about 140 MB for
// the whole process through RunAndStore on a real Pebble ledger
// (BenchmarkEndToEnd1M). Options.OnException receives every exception as it
// is found, for callers that keep them all.
package reconcile
