// Package audit owns the activity register: hash-chained entries, their export and offline verification.
package audit
