"""The mock server: any OpenAPI document served through the generated routes and the real
runtime, answering with documented examples or values synthesised from the schemas."""
