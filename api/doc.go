// Package api is paytrail's HTTP interface: the Gin router, webhook
// ingestion, authentication and authorization, access logging and the JSON
// error format.
//
// Every route is registered in routes.go with the roles allowed to call it.
// Handlers return errors; one table in errors.go turns them into statuses and
// the contract's error body {"error": {"code", "message"}}. A 500 never
// echoes an internal error.
//
// Every read of cardholder data, every disclosure, every read of the access
// log and every denied attempt is appended to the ledger as an access entry
// before the answer is sent; if that append fails the data is not returned
// (fail closed).
package api
