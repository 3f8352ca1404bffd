package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// DecodeError says in a sentence what is wrong with a JSON request body,
// and which field when one is at fault ("" otherwise), instead of
// encoding/json's wording ("json: cannot unmarshal string into Go struct
// field New.per_instance of type bool").
func DecodeError(err error) (msg, field string) {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("the body is not valid JSON (at byte %d)", syntax.Offset), ""
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the body is not valid JSON: it ends too early", ""
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("the body must be %s, not %s", jsonKind(typ.Type), article(typ.Value)), ""
		}
		return fmt.Sprintf("%s must be %s, not %s", typ.Field, jsonKind(typ.Type), article(typ.Value)), typ.Field
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return fmt.Sprintf("there is no field %q here", name), name
	}
	return "the body is not the JSON asked for", ""
}

// jsonKind names what a Go type reads from JSON.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another kind of value"
}

// article names a JSON value kind as encoding/json reports it ("string",
// "number 1.5", "bool", "array", "object").
func article(v string) string {
	if n, ok := strings.CutPrefix(v, "number "); ok {
		return n
	}
	switch v {
	case "array", "object":
		return "an " + v
	case "bool":
		return "a boolean"
	}
	return "a " + v
}
