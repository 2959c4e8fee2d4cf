package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/urne-vote/urne/transport/urnepb"
)

func readAllVoters(t testing.TB, input, format string) ([]*urnepb.Voter, error) {
	t.Helper()
	vr, err := newVoterReader(strings.NewReader(input), format)
	if err != nil {
		return nil, err
	}
	var out []*urnepb.Voter
	for {
		v, err := vr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
}

func voterIDs(vs []*urnepb.Voter) string {
	ids := make([]string, len(vs))
	for i, v := range vs {
		ids[i] = v.VoterId + "/" + v.Name + "/" + v.Email
	}
	return strings.Join(ids, ",")
}

func TestReadVotersValid(t *testing.T) {
	tests := []struct {
		name, format, input, want string
	}{
		{"csv", formatAuto, "voter_id,name,email\nv1,Ada,ada@x\nv2,Bob,bob@x\n", "v1/Ada/ada@x,v2/Bob/bob@x"},
		{"csv columns in another order", formatAuto, "email,voter_id\na@x,v1\n", "v1//a@x"},
		{"csv with BOM and CRLF", formatAuto, "\ufeffvoter_id,name,email\r\nv1,\"Doe, Jane\",j@x\r\n", "v1/Doe, Jane/j@x"},
		{"csv header only", formatAuto, "voter_id,name,email\n", ""},
		{"json lines", formatAuto, "{\"voter_id\":\"v1\",\"name\":\"Ada\"}\n{\"voter_id\":\"v2\"}\n", "v1/Ada/,v2//"},
		{"json array", formatAuto, "[\n {\"voter_id\":\"v1\"},\n {\"voter_id\":\"v2\",\"email\":\"e\"}\n]\n", "v1//,v2//e"},
		{"empty json array", formatAuto, " [ ] ", ""},
		{"forced jsonl", formatJSONL, "{\"voter_id\":\"v1\"}", "v1//"},
		{"csv with the legal fields", formatAuto, "voter_id,name,email,date_of_birth,secret,composante,collège,secteur\n" +
			"v1,Ada,ada@x,02/03/1980,1234,IUT,A,Nord\n", "v1/Ada/ada@x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAllVoters(t, tt.input, tt.format)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if voterIDs(got) != tt.want {
				t.Fatalf("got %q, want %q", voterIDs(got), tt.want)
			}
		})
	}
}

func TestReadVotersErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		name, input, want string
	}{
		{"empty file", "", "the file is empty"},
		{"no voter_id column", "name,email\nA,a\n", "line 1: the header has no voter_id column"},
		{"unknown column", "voter_id,age\nv1,3\n", `line 1: unknown column "age"`},
		{"duplicate column", "voter_id,voter_id\nv1,v1\n", `line 1: column "voter_id" appears twice`},
		{"csv empty id", "voter_id,name\nv1,A\n,B\n", "line 3: voter_id is empty"},
		{"csv wrong field count", "voter_id,name\nv1,A\nv2\n", "line 3: wrong number of fields"},
		{"csv bare quote", "voter_id,name\nv1,A\"B\n", "line 2:"},
		{"csv spaces around id", "voter_id\n v1\n", `line 2: voter_id " v1" has leading or trailing spaces`},
		{"csv invalid utf8", "voter_id,name\nv1,\xff\n", "line 2: voter \"v1\": name is not valid UTF-8"},
		{"json lines unknown field", "{\"voter_id\":\"v1\"}\n{\"voter_id\":\"v2\",\"age\":3}\n", "line 2: json: unknown field \"age\""},
		{"json lines missing id", "{\"voter_id\":\"v1\"}\n\n{\"name\":\"x\"}\n", "line 3: voter_id is empty"},
		{"json lines syntax", "{\"voter_id\":\"v1\"}\n{\"voter_id\" \"v2\"}\n", "line 2: invalid character"},
		{"json array wrong type", "[\n{\"voter_id\":\"v1\"},\n{\"voter_id\":7}\n]", "line 3: json: cannot unmarshal number"},
		{"json array truncated", "[\n{\"voter_id\":\"v1\"},\n{\"voter_id\":\"v2\"", "line 3: the file ends in the middle of a value"},
		{"json array unclosed", "[\n{\"voter_id\":\"v1\"}\n", "the file ends in the middle of a value"},
		{"json trailing data", "[{\"voter_id\":\"v1\"}]\n[]", "line 2: unexpected [ after the last voter"},
		{"json stray brace", "{\"voter_id\":\"v1\"}\n}", "line 2: invalid character '}'"},
		{"json not objects", "[\"v1\"]", "line 1: json: cannot unmarshal string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readAllVoters(t, tt.input, formatAuto)
			if err == nil {
				t.Fatal("want an error, got none")
			}
			if !errors.Is(err, errVoterFile) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q: want errVoterFile mentioning %q", err, tt.want)
			}
		})
	}
}

func TestReadVotersUnknownFormat(t *testing.T) {
	if _, err := newVoterReader(strings.NewReader(""), "xml"); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Fatalf("want an error naming the format, got %v", err)
	}
}

// endlessReader yields a header then rows without end; a reader that buffers the whole file
// would never return.
type endlessReader struct {
	head string
	row  func(i int) string
	i    int
	buf  []byte
}

func (e *endlessReader) Read(p []byte) (int, error) {
	if len(e.buf) == 0 {
		if e.head != "" {
			e.buf, e.head = []byte(e.head), ""
		} else {
			e.buf = []byte(e.row(e.i))
			e.i++
		}
	}
	n := copy(p, e.buf)
	e.buf = e.buf[n:]
	return n, nil
}

func TestReadVotersStreams(t *testing.T) {
	sources := map[string]*endlessReader{
		"csv":   {head: "voter_id,name\n", row: func(i int) string { return fmt.Sprintf("v%d,N\n", i) }},
		"jsonl": {row: func(i int) string { return fmt.Sprintf("{\"voter_id\":\"v%d\"}\n", i) }},
		"array": {head: "[\n", row: func(i int) string { return fmt.Sprintf("{\"voter_id\":\"v%d\"},\n", i) }},
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			vr, err := newVoterReader(src, formatAuto)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 1000 {
				v, err := vr.Next()
				if err != nil {
					t.Fatalf("voter %d: %v", i, err)
				}
				if want := fmt.Sprintf("v%d", i); v.VoterId != want {
					t.Fatalf("voter %d is %q, want %q", i, v.VoterId, want)
				}
			}
		})
	}
}

func TestReadVotersLineNumbersFarIntoTheFile(t *testing.T) {
	var b strings.Builder
	b.WriteString("[\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "  {\"voter_id\": \"v%d\", \"name\": \"%s\"},\n", i, strings.Repeat("n", i%50))
	}
	b.WriteString("  {\"voter_id\": \"\"}\n]\n")
	_, err := readAllVoters(t, b.String(), formatAuto)
	if err == nil || !strings.Contains(err.Error(), "line 5002: voter_id is empty") {
		t.Fatalf("want the error on line 5002, got %v", err)
	}
}

func TestReadVotersRefusesHugeRows(t *testing.T) {
	huge := strings.Repeat("x", 2*maxRowBytes)
	for name, input := range map[string]string{
		"csv":  "voter_id\nv1\n" + huge + "\n",
		"json": "{\"voter_id\":\"v1\"}\n{\"voter_id\":\"" + huge + "\"}\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := readAllVoters(t, input, formatAuto)
			if err == nil || !strings.Contains(err.Error(), "line 3") && !strings.Contains(err.Error(), "line 2") {
				t.Fatalf("want an error naming the long line, got %v", err)
			}
			if !strings.Contains(err.Error(), "longer than") {
				t.Fatalf("want a size error, got %v", err)
			}
		})
	}
}

func TestReadVotersLegalFields(t *testing.T) {
	inputs := map[string]string{
		"csv":  "voter_id,date_of_birth,secret,composante,college,secteur\nv1,02/03/1980, 1234 ,IUT,A,Nord\n",
		"json": `{"voter_id":"v1","date_of_birth":"1980-03-02","secret":" 1234 ","composante":"IUT","college":"A","secteur":"Nord"}`,
	}
	for name, input := range inputs {
		got, err := readAllVoters(t, input, formatAuto)
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: %v, %v", name, got, err)
		}
		v := got[0]
		if v.DateOfBirth != "1980-03-02" || v.Secret != " 1234 " || v.Composante != "IUT" || v.College != "A" || v.Secteur != "Nord" {
			t.Fatalf("%s: voter = %v", name, v)
		}
	}
	for input, want := range map[string]string{
		"voter_id,date_of_birth\nv1,1980-13-01\n":               "neither YYYY-MM-DD nor DD/MM/YYYY",
		"voter_id,secret\nv1," + strings.Repeat("9", 65) + "\n": "the secret is 65 bytes long",
		`{"voter_id":"v1","date_of_birth":"31/02/1980"}`:        "line 1: voter \"v1\": date_of_birth",
	} {
		if _, err := readAllVoters(t, input, formatAuto); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", input, err, want)
		}
	}
}

func FuzzReadVoters(f *testing.F) {
	f.Add("voter_id,name,email\nv1,Ada,ada@x\n")
	f.Add("voter_id,name,email,date_of_birth,secret,composante,collège,secteur\nv1,Ada,ada@x,02/03/1980,1234,IUT,A,Nord\n")
	f.Add(`{"voter_id":"v1","date_of_birth":"1980-03-02","secret":"1234","college":"A"}`)
	f.Add("email,voter_id\n\"a,b\",v1\r\n")
	f.Add("{\"voter_id\":\"v1\"}\n{\"voter_id\":\"v2\",\"name\":\"x\"}")
	f.Add("[{\"voter_id\":\"v1\"},{\"voter_id\":\"v2\"}]")
	f.Add("[\n{\"voter_id\":\"v1\"}\n")
	f.Add("\ufeff voter_id\n\"v1\"\"\n")
	f.Fuzz(func(t *testing.T, input string) {
		for _, format := range []string{formatAuto, formatCSV, formatJSONL} {
			got, err := readAllVoters(t, input, format)
			for _, v := range got {
				if err := checkVoter(v); err != nil {
					t.Fatalf("reader returned a voter that breaks the row rules: %v", err)
				}
			}
			if err != nil && !errors.Is(err, errVoterFile) && !strings.Contains(err.Error(), "format") {
				t.Fatalf("error %v does not say it is about the voter file", err)
			}
			if err != nil && errors.Is(err, errVoterFile) && !strings.Contains(err.Error(), "line ") && !strings.Contains(err.Error(), "empty") {
				t.Fatalf("error %q does not name a line", err)
			}
		}
	})
}
