// Package schematest checks the JSON Schemas in api/schemas against the
// consumer's Go decoders. It is its own module so that the JSON Schema
// validator it uses stays out of the service's go.mod; it reads the
// schemas, and the sample bodies with the decoders' verdicts that
// internal/messages exports to testdata/samples.json (go test
// ./internal/messages -run TestExportSamples -update), from disk.
package schematest
