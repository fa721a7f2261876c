// Package cost says what re-verifying images costs and how long it takes:
// paid calls × the price per call, and the time the fleet needs for them
// at its rate, its rate schedule and its daily budget. It is pure: the
// callers bring the counts, the fleet's settings and the clock.
package cost

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
)

// Price is an exact amount of money per API call, in a currency: a
// decimal, never a float, since invoices are reconciled to the cent.
type Price struct {
	units    int64 // the amount × 10^scale
	scale    int
	currency string
}

// maxScale and maxDigits bound what a price may be written with.
const (
	maxScale  = 12
	maxDigits = 18
)

// ParsePrice reads "0.0021 EUR" (or "EUR 0.0021"): a non-negative decimal
// and an ISO 4217 currency code.
func ParsePrice(s string) (Price, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return Price{}, fmt.Errorf("price %q: want an amount and a currency, e.g. \"0.0021 EUR\"", s)
	}
	amount, cur := f[0], f[1]
	if isCurrency(amount) && !isCurrency(cur) {
		amount, cur = cur, amount
	}
	if !isCurrency(cur) {
		return Price{}, fmt.Errorf("price %q: currency %q is not a three-letter code such as EUR or USD", s, cur)
	}
	whole, frac, _ := strings.Cut(amount, ".")
	digits := whole + frac
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return Price{}, fmt.Errorf("price %q: amount %q is not a decimal number such as 0.0021", s, amount)
	}
	digits = strings.TrimLeft(digits, "0")
	if len(frac) > maxScale || len(digits) > maxDigits {
		return Price{}, fmt.Errorf("price %q: amount %q has too many digits (at most %d after the point)", s, amount, maxScale)
	}
	var units int64
	for _, c := range digits {
		units = units*10 + int64(c-'0')
	}
	return Price{units: units, scale: len(frac), currency: cur}, nil
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// IsZero reports whether no price was given.
func (p Price) IsZero() bool { return p.currency == "" }

// Currency is the price's currency code.
func (p Price) Currency() string { return p.currency }

// String writes the price as ParsePrice reads it.
func (p Price) String() string {
	if p.IsZero() {
		return ""
	}
	return Money{v: big.NewInt(p.units), scale: p.scale, currency: p.currency}.exact() + " " + p.currency
}

// Times is the price of n calls.
func (p Price) Times(n int64) Money {
	v := new(big.Int).Mul(big.NewInt(p.units), big.NewInt(n))
	return Money{v: v, scale: p.scale, currency: p.currency}
}

// Money is an exact amount in a currency.
type Money struct {
	v        *big.Int // × 10^-scale
	scale    int
	currency string
}

// Amount is the amount as a decimal, with at least two decimals and every
// decimal the price had: "4.2000" for 2,000 calls at 0.0021.
func (m Money) Amount() string { return m.exact() }

// Currency is the amount's currency code.
func (m Money) Currency() string { return m.currency }

func (m Money) exact() string {
	v := m.v
	if v == nil {
		v = new(big.Int)
	}
	s := v.String()
	scale := max(m.scale, 2)
	s += strings.Repeat("0", scale-m.scale)
	if len(s) <= scale {
		s = strings.Repeat("0", scale-len(s)+1) + s
	}
	return s[:len(s)-scale] + "." + s[len(s)-scale:]
}

// String is the amount and its currency, "4.2000 EUR".
func (m Money) String() string { return m.exact() + " " + m.currency }

// MarshalJSON writes {"amount": "4.2000", "currency": "EUR"}: the amount
// as a string, so no JSON reader turns it into a float.
func (m Money) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Amount   string `json:"amount"`
		Currency string `json:"currency"`
	}{m.exact(), m.currency})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Money) UnmarshalJSON(b []byte) error {
	var v struct {
		Amount   string `json:"amount"`
		Currency string `json:"currency"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	p, err := ParsePrice(v.Amount + " " + v.Currency)
	if err != nil {
		return fmt.Errorf("money: %w", err)
	}
	*m = p.Times(1)
	return nil
}
