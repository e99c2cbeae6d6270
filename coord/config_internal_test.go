package coord

import (
	"log/slog"
	"reflect"
	"testing"
	"time"
)

// Every field of Config reaches the parts: settings copies each exported
// field to member.Settings' field of the same name, so a field added to
// Config and forgotten there fails here.
func TestSettingsCarriesEveryConfigField(t *testing.T) {
	var c Config
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if !v.Type().Field(i).IsExported() {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			f.SetInt(7)
		case reflect.Uint64:
			f.SetUint(7)
		case reflect.Map:
			f.Set(reflect.ValueOf(map[string]string{"x": "y"}))
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"x"}))
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		default:
			t.Fatalf("Config.%s: kind %v not covered by this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	c.Logger = slog.Default()
	c.RequestTimeout = 7 * time.Second
	c.TLS = &TLSConfig{CAFile: "ca", CertFile: "cert", KeyFile: "key"}
	s := reflect.ValueOf(c.settings())
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if !v.Type().Field(i).IsExported() {
			continue
		}
		sf := s.FieldByName(name)
		if !sf.IsValid() {
			t.Errorf("member.Settings has no field %s", name)
			continue
		}
		if name == "TLS" {
			continue // checked below: another type
		}
		if !reflect.DeepEqual(sf.Interface(), v.Field(i).Interface()) {
			t.Errorf("settings().%s = %v, want %v", name, sf.Interface(), v.Field(i).Interface())
		}
	}
	if tls := c.settings().TLS; tls == nil || tls.CAFile != "ca" || tls.CertFile != "cert" || tls.KeyFile != "key" {
		t.Errorf("settings().TLS = %+v", tls)
	}
}
