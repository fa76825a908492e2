package auth_test

import (
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rumorhq/rumor/auth"
	"github.com/rumorhq/rumor/broker"
)

func Example() {
	secret := []byte("an-example-secret-of-32-bytes-or-more")
	a, err := auth.New(auth.Config{HMACSecret: secret, Public: []string{"news"}})
	if err != nil {
		panic(err)
	}
	defer a.Close()

	token, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":   "checkout",
		"exp":   time.Now().Add(time.Hour).Unix(),
		"rumor": map[string]any{"publish": []string{"orders.>"}},
	}).SignedString(secret)
	r := httptest.NewRequest("POST", "/channels/orders.eu", nil)
	r.Header.Set("Authorization", "Bearer "+token)

	p, aerr := a.Authenticate(r)
	if aerr != nil {
		panic(aerr)
	}
	fmt.Println(p.Subject, "via", p.Via)
	fmt.Println("publish orders.eu:", a.CanPublish(p, "orders.eu") == nil)
	fmt.Println("publish news:", a.CanPublish(p, "news"))
	news, _ := broker.ParsePattern("news")
	fmt.Println("anyone may subscribe to news:", a.CanSubscribe(nil, []broker.Pattern{news}) == nil)
	// Output:
	// checkout via header
	// publish orders.eu: true
	// publish news: token does not grant publish to "news"
	// anyone may subscribe to news: true
}
