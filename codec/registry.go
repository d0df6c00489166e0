package codec

import (
	"fmt"
	"reflect"
)

// Type identifies a message type on the wire. Values are part of the protocol:
// never reuse one.
type Type uint16

// Spec describes one registered message type.
type Spec struct {
	Type      Type
	Name      string   // for logs and errors, e.g. "heartbeat"
	Protocols []string // the libp2p protocol IDs it may travel on
	goType    reflect.Type
}

// Allowed reports whether the type may travel on protocol.
func (s *Spec) Allowed(protocol string) bool {
	for _, p := range s.Protocols {
		if p == protocol {
			return true
		}
	}
	return false
}

// Registry maps message types to Go types and protocol IDs. Build it once at
// start-up, before any stream is served; it is read-only afterwards.
type Registry struct {
	byType map[Type]*Spec
	byGo   map[reflect.Type]*Spec
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byType: map[Type]*Spec{}, byGo: map[reflect.Type]*Spec{}}
}

// Register binds message type t, carried on the given protocols, to the Go
// type T. T must be a struct type; messages are encoded from T or *T values
// and decoded into *T. Registering a number, a name or a Go type twice is an
// error.
func Register[T any](r *Registry, t Type, name string, protocols ...string) error {
	return r.register(reflect.TypeFor[T](), t, name, protocols)
}

// register is Register's body, kept out of the generic function so that
// one copy of its code serves every message type: each type's
// instantiation would otherwise be translated anew when a nano starts
// under emulation.
func (r *Registry) register(gt reflect.Type, t Type, name string, protocols []string) error {
	if gt.Kind() != reflect.Struct {
		return fmt.Errorf("codec: register %s: %v is not a struct type", name, gt)
	}
	if name == "" || len(protocols) == 0 {
		return fmt.Errorf("codec: register type %d: a name and at least one protocol are required", t)
	}
	for _, p := range protocols {
		if p == "" {
			return fmt.Errorf("codec: register %s: empty protocol ID", name)
		}
	}
	if old, ok := r.byType[t]; ok {
		return fmt.Errorf("codec: register %s: type %d already used by %s", name, t, old.Name)
	}
	if old, ok := r.byGo[gt]; ok {
		return fmt.Errorf("codec: register %s: %v already registered as %s", name, gt, old.Name)
	}
	for _, s := range r.byType {
		if s.Name == name {
			return fmt.Errorf("codec: register %s: name already used by type %d", name, s.Type)
		}
	}
	s := &Spec{Type: t, Name: name, Protocols: protocols, goType: gt}
	r.byType[t] = s
	r.byGo[gt] = s
	r.byGo[reflect.PointerTo(gt)] = s
	return nil
}

// Allow lets the registered message type t travel on more protocols too
// (a message shared by protocols that are added after the registry's
// first build, such as an ack).
func (r *Registry) Allow(t Type, protocols ...string) error {
	s, ok := r.byType[t]
	if !ok {
		return fmt.Errorf("codec: allow type %d: not registered", t)
	}
	for _, p := range protocols {
		if p == "" {
			return fmt.Errorf("codec: allow %s: empty protocol ID", s.Name)
		}
		if !s.Allowed(p) {
			s.Protocols = append(s.Protocols, p)
		}
	}
	return nil
}

// Carries reports whether message type t may travel on protocol.
func (r *Registry) Carries(t Type, protocol string) bool {
	s, ok := r.byType[t]
	return ok && s.Allowed(protocol)
}
