package api

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestReportAnswerValidate(t *testing.T) {
	t.Parallel()
	good := ReportAnswer{Ops: []NodeOp{{ID: "op-1", Node: "k3q5x9y2a1b0", Do: OpDrain}, {ID: "op-2", Node: "n2", Do: OpActivate},
		{ID: "op-3", Node: "n3", Do: OpRemove}, {ID: "op_4", Node: "n4", Do: OpRemoveForce}}}
	var buf bytes.Buffer
	if err := Encode(&buf, good); err != nil {
		t.Fatal(err)
	}
	var out ReportAnswer
	if err := Decode(&buf, &out); err != nil || len(out.Ops) != 4 || out.Ops[3] != good.Ops[3] {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	for name, c := range map[string]struct {
		body string
		want string
	}{
		"unknown verb":   {`{"ops":[{"id":"op-1","node":"n1","do":"reboot"}]}`, `"reboot" is not one of`},
		"no verb":        {`{"ops":[{"id":"op-1","node":"n1"}]}`, `"" is not one of`},
		"no id":          {`{"ops":[{"node":"n1","do":"drain"}]}`, "op id missing"},
		"id with space":  {`{"ops":[{"id":"op 1","node":"n1","do":"drain"}]}`, "only letters"},
		"long id":        {`{"ops":[{"id":"` + strings.Repeat("a", MaxOpIDLen+1) + `","node":"n1","do":"drain"}]}`, "op id longer"},
		"no node":        {`{"ops":[{"id":"op-1","do":"drain"}]}`, "node id missing"},
		"node with /":    {`{"ops":[{"id":"op-1","node":"../n1","do":"drain"}]}`, "only letters"},
		"same id twice":  {`{"ops":[{"id":"op-1","node":"n1","do":"drain"},{"id":"op-1","node":"n2","do":"drain"}]}`, "op id op-1 twice"},
		"unknown field":  {`{"ops":[{"id":"op-1","node":"n1","do":"drain","force":true}]}`, "unknown field"},
		"too many ops":   {`{"ops":[` + strings.Repeat(`{"id":"a","node":"n","do":"drain"},`, MaxNodeOps) + `{"id":"a","node":"n","do":"drain"}]}`, "more than 64 ops"},
		"ops not a list": {`{"ops":{"id":"op-1"}}`, "cannot unmarshal"},
	} {
		var a ReportAnswer
		err := Decode(strings.NewReader(c.body), &a)
		if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrDecode containing %q", name, err, c.want)
		}
	}
}

// Results travel in the report: bounded, printable, by a valid op ID.
func TestReportOpResults(t *testing.T) {
	t.Parallel()
	in := Report{Swarm: SwarmState{State: "active"}, OpResults: []NodeOpResult{{ID: "op-1"}, {ID: "op-2", Error: "node n9 not found", NotFound: true}}}
	var buf bytes.Buffer
	Encode(&buf, in)
	var out Report
	if err := Decode(&buf, &out); err != nil || len(out.OpResults) != 2 || out.OpResults[1] != in.OpResults[1] {
		t.Fatalf("round trip: %+v, %v", out.OpResults, err)
	}
	for name, c := range map[string]struct {
		r    []NodeOpResult
		want string
	}{
		"no id":        {[]NodeOpResult{{Error: "x"}}, "op_results[0]: op id missing"},
		"control char": {[]NodeOpResult{{ID: "op-1"}, {ID: "op-2", Error: "line\nline"}}, "op_results[1]: op op-2: error text contains a control character"},
		"long error":   {[]NodeOpResult{{ID: "op-1", Error: strings.Repeat("e", 4*maxShort+1)}}, "error text longer"},
		"too many":     {make([]NodeOpResult, MaxNodeOps+1), "more than 64 op results"},
	} {
		err := (&Report{OpResults: c.r}).Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", name, err, c.want)
		}
	}
}
