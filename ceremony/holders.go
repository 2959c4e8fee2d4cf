package ceremony

import (
	"encoding/json"
	"slices"
)

// Role is a person's role in the election.
type Role string

// Roles. The bureau de vote is the president and deputy, the secretary, the list delegates
// and their deputies, and other assessors; only they hold fragments and sign the minutes.
const (
	RolePresident      Role = "president"
	RoleDeputy         Role = "deputy"
	RoleSecretary      Role = "secretary"
	RoleDelegate       Role = "delegate"
	RoleDelegateDeputy Role = "delegate-deputy"
	RoleMember         Role = "member"
	RoleObserver       Role = "observer"
	RoleExpert         Role = "expert"
	RoleOperator       Role = "operator"
	RoleTechnical      Role = "technical"
)

var bureauRoles = []Role{RolePresident, RoleDeputy, RoleSecretary, RoleDelegate, RoleDelegateDeputy, RoleMember}

var otherRoles = []Role{RoleObserver, RoleExpert, RoleOperator, RoleTechnical}

// Known reports whether r is one of the roles above.
func (r Role) Known() bool { return slices.Contains(bureauRoles, r) || slices.Contains(otherRoles, r) }

// IsBureau reports whether r is a bureau role: such a person may hold a fragment and gets a
// key to sign the minutes. Operators and technical staff run the platform and must never be
// able to decrypt; observers and experts watch but do not decide.
func (r Role) IsBureau() bool { return slices.Contains(bureauRoles, r) }

// Person is someone taking part in the ceremony.
type Person struct {
	// Name is the short name used in the policy, file names and signatures.
	Name string `json:"name"`
	Role Role   `json:"role"`
	// FullName is how the minutes name the person.
	FullName string `json:"full_name,omitempty"`
}

// maxHoldersFile bounds the holder list ParseHolders reads.
const maxHoldersFile = 1 << 20

// ParseHolders reads a JSON array of persons and validates it.
func ParseHolders(data []byte) ([]Person, error) {
	if len(data) > maxHoldersFile {
		return nil, errorf(ErrHolders, "holder list is %d bytes; at most %d are read", len(data), maxHoldersFile)
	}
	var people []Person
	if err := json.Unmarshal(data, &people); err != nil {
		return nil, errorf(ErrHolders, "holder list is not a JSON array of {name, role, full_name}: %v", err)
	}
	return people, validatePeople(people)
}

func validatePeople(people []Person) error {
	if len(people) == 0 {
		return errorf(ErrHolders, "the holder list is empty")
	}
	seen := map[string]bool{}
	for _, p := range people {
		if err := checkName(p.Name); err != nil {
			return errorf(ErrHolders, "holder list: %v", err)
		}
		if seen[p.Name] {
			return errorf(ErrHolders, "holder list names %q twice", p.Name)
		}
		seen[p.Name] = true
		if !p.Role.Known() {
			return errorf(ErrHolders, "holder %q has unknown role %q", p.Name, p.Role)
		}
		if len(p.FullName) > 256 {
			return errorf(ErrHolders, "holder %q: full name longer than 256 bytes", p.Name)
		}
	}
	return nil
}

// checkHolders ensures that every holder the policy names is listed with a bureau role.
func checkHolders(policy *Policy, people []Person) error {
	byName := map[string]Person{}
	for _, p := range people {
		byName[p.Name] = p
	}
	for _, h := range policy.Holders() {
		p, ok := byName[h]
		if !ok {
			return errorf(ErrHolders, "the policy names holder %q, who is not in the holder list", h)
		}
		if !p.Role.IsBureau() {
			return errorf(ErrForbiddenHolder, "the policy gives a fragment to %q, whose role is %q: only bureau members (president, deputy, secretary, delegates and their deputies, members) may hold one", h, p.Role)
		}
	}
	return nil
}
